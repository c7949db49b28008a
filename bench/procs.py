"""CPU time and memory of the stack's processes, read from /proc (Linux only, like the stack itself).

CPU is utime + stime of each process (all of its threads), so "server CPU per request" is what the
gunicorn master and its workers, or Flower, or redis-server burned for the requests of one row,
whatever thread or process did the work.
"""
from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2:].split()  # fields from `state` (3rd) on; comm may hold spaces


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 for one that is gone)."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    """Direct children of `pid` (gunicorn workers, Celery pool processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return sorted(found)


def tree(pid: int) -> list[int]:
    """The process and its direct children."""
    return [pid, *children(pid)]


def rss_mib(pid: int) -> float | None:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return round(resident * PAGE / 2**20, 1)


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
