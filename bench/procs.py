"""CPU time of the stack's processes over a bench row (read from /proc by devsupport/procfs.py).

CPU is utime + stime of each process (all of its threads), so "server CPU per request" is what the
gunicorn master and its workers, or Flower, or redis-server burned for the requests of one row,
whatever thread or process did the work.
"""
from __future__ import annotations

from devsupport.procfs import cpu_seconds


class CpuMeter:
    """CPU seconds burned by groups of processes between `start()` and `stop()`.

    Groups are functions returning the current pids, read at both ends; a pid present at only one end
    (a restarted worker) is reported in `changed` so the figure is not trusted blindly.
    """

    def __init__(self, **groups) -> None:
        self.groups = groups
        self._before: dict[str, dict[int, float]] = {}
        self.changed: list[str] = []

    def _read(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def start(self) -> CpuMeter:
        self._before = self._read()
        return self

    def stop(self) -> dict[str, float]:
        after = self._read()
        used = {}
        for name, now in after.items():
            before = self._before.get(name, {})
            if set(before) != set(now):
                self.changed.append(name)
            used[name] = sum(now.values()) - sum(before.get(pid, 0.0) for pid in now)
        return used
