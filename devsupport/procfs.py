"""What Linux says about a process we started, read from /proc (Linux only, like the stack itself): its CPU
time, memory, state, children, limits, command line and environment. The test suite, the bench and the
fault suite all read it here, so there is one parser of /proc/<pid>/stat and one answer to "which
processes are its children" and "is it still running".

Readers of a process that may be gone say so in their docstring: some return a neutral value (the bench
samples processes that can exit between two reads), the others raise OSError (the tests assert on a
process that must exist).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")  # utime and stime are counted in clock ticks
PAGE = os.sysconf("SC_PAGE_SIZE")  # statm counts pages


class Stat(NamedTuple):
    """The fields of /proc/<pid>/stat the callers use (proc(5) numbers them: state 3, ppid 4, utime 14,
    stime 15)."""

    pid: int
    comm: str
    state: str  # R running, S sleeping, D disk sleep, T stopped, Z zombie, ...
    ppid: int
    utime: int  # clock ticks in user mode, all threads
    stime: int  # clock ticks in kernel mode, all threads

    @property
    def cpu_seconds(self) -> float:
        return (self.utime + self.stime) / TICKS


def parse_stat(text: str) -> Stat:
    """One line of /proc/<pid>/stat. comm is in parentheses and may itself hold spaces and ')' (a
    process can name itself anything), so it ends at the last ')', never at the first space."""
    head, _, tail = text.rpartition(")")
    pid, _, comm = head.partition("(")
    fields = tail.split()  # from `state` (3rd field) on
    return Stat(pid=int(pid), comm=comm, state=fields[0], ppid=int(fields[1]), utime=int(fields[11]),
                stime=int(fields[12]))


def stat(pid: int) -> Stat:
    """The parsed /proc/<pid>/stat of a process; OSError (FileNotFoundError, ProcessLookupError) if it is gone."""
    return parse_stat((PROC / str(pid) / "stat").read_text())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all of its threads), in seconds; 0 for one that is gone, so a
    meter sampling a process that exited meanwhile does not fail."""
    try:
        return stat(pid).cpu_seconds
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def alive(pid: int) -> bool:
    """A live process: one that exists and is not a zombie (a killed process lingers as one until its
    parent reaps it, so "its pid exists" is not enough)."""
    try:
        return stat(pid).state != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (gunicorn's workers, a Celery worker's pool), sorted.
    Processes that exit while /proc is being read are skipped."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if stat(int(entry.name)).ppid == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return sorted(found)


def tree(pid: int) -> list[int]:
    """The process and its direct children: what a gunicorn master or a Celery worker is, as a whole."""
    return [pid, *children(pid)]


def rss_mib(pid: int) -> float | None:
    """Resident memory now, in MiB to one decimal (from statm's resident pages); None for a process that
    is gone, so a sample of many processes still has the others."""
    try:
        resident = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return round(resident * PAGE / 2**20, 1)


def status_kib(pid: int, field: str) -> int:
    """A memory figure from /proc/<pid>/status in KiB: VmRSS (now), VmHWM (peak so far, which a sample
    of VmRSS could miss). KeyError for a field the kernel does not show."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def address_space_limit(pid: int) -> str:
    """The soft RLIMIT_AS of the process, as /proc shows it (bytes, or "unlimited"): the limit the
    process really runs under, not the one its configuration asked for."""
    for line in (PROC / str(pid) / "limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    raise KeyError("Max address space")


def cmdline(pid: int) -> list[str]:
    """The argv the process was really started with (what a test asserts a launcher passed)."""
    return (PROC / str(pid) / "cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def environ(pid: int) -> dict[str, str]:
    """The environment the process was started with (not later changes it made to its own)."""
    pairs = (PROC / str(pid) / "environ").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
    return dict(pair.partition("=")[::2] for pair in pairs if pair)
