"""What Linux says about a process the tests started (/proc): its children, memory, limits, command
line and environment. Read, never guessed: the tests assert on the real processes."""
from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (a Celery worker's pool, gunicorn's workers)."""
    found = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def status_kib(pid: int, field: str) -> int:
    """A memory figure from /proc/<pid>/status in KiB: VmRSS (now), VmHWM (peak so far)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def address_space_limit(pid: int) -> str:
    """The soft RLIMIT_AS of the process, as /proc shows it (bytes, or "unlimited")."""
    for line in (PROC / str(pid) / "limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    raise KeyError("Max address space")


def cmdline(pid: int) -> list[str]:
    return (PROC / str(pid) / "cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def environ(pid: int) -> dict[str, str]:
    pairs = (PROC / str(pid) / "environ").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
    return dict(pair.partition("=")[::2] for pair in pairs if pair)
