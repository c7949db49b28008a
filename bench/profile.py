"""py-spy profiles of the gunicorn workers under load, and a summary that fits in a result file.

py-spy samples 100 times a second, without pausing the process (`--nonblocking`), only the thread
holding the GIL (`--gil`): with 8 threads per worker, most threads most of the time wait on a socket
(Redis, the client) or for the GIL, and those waits are not where the CPU goes. So the percentages are
shares of the Python CPU time of the workers (C code that releases the GIL is not seen). Output is
collapsed stacks (`-f raw`): one line per distinct stack, `frame;frame;...;leaf count`, each frame
`function (file:line)`.
"""
from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from devsupport.processes import BIN

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Where a sample's time goes. First the concerns that are one cost wherever they are called from: a
# sample with any of these frames anywhere in its stack belongs to it.
ANYWHERE: list[tuple[str, tuple[str, ...]]] = [
    ("logging (loguru, request log, audit line)", ("loguru/", "settings/logs.py", "logging/")),
    ("metrics (prometheus_client)", ("prometheus_client/", "gateway/health/metrics.py")),
    ("task-sent event (celery.events, task_send_sent_event)", ("celery/events/",)),
]
# Then the innermost frame that matches (leaf first). Library frames without a rule (redis-py, json,
# socket, threading) fall through to whoever called them, so a Redis call inside gateway/store.py
# counts as the task record, inside kombu as the publish.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("logging (loguru, request log, audit line)", ("gateway/http/requestlog.py",)),
    ("validation (marshmallow, jsonschema, contract)", ("marshmallow/", "jsonschema/", "referencing/",
                                                        "jsonschema_specifications/", "rpds/",
                                                        "gateway/http/contract.py", "gateway/jobs.py", "jobs/catalogue.py",
                                                        "gateway/http/schemas.py", "gateway/routes/tasks.py:upload_errors")),
    # Old and new paths (jobs/ took the shared core out of gateway/ and tasks/), so saved raw files of
    # earlier runs still summarize alike.
    # /taskinfo's read: the round trip (rate check + record + meta, or only `created` for a finished task
    # this process remembers) and the TaskInfo built from it.
    ("task read (gateway/submission/reading.py, jobs/taskinfo.py, jobs/status.py, jobs/results.py)",
     ("gateway/submission/reading.py", "jobs/taskinfo.py", "jobs/status.py", "jobs/results.py")),
    ("task record (jobs/store.py + redis-py)", ("gateway/store.py", "tasks/stats.py", "jobs/store.py",
                                                "jobs/record.py", "jobs/stats.py")),
    # Since the save script, send_task only builds the message (its Redis commands are captured, then run
    # inside the script): the first is Celery's and kombu's Python, the second the one round trip.
    ("Celery message building (send_task, kombu, captured)", ("gateway/submission/publishing.py:message_commands",
                                                               "gateway/transport.py", "gateway/submission/capture.py",
                                                               "kombu/", "celery/", "amqp/", "vine/", "billiard/")),
    ("save script round trip (rate, cap, record, message; publishing.py + redis-py)",
     ("gateway/dispatch.py", "gateway/submission/publishing.py")),
    ("rate limit + unfinished cap (gateway/access/ratelimit.py, limits)", ("gateway/access/ratelimit.py", "limits/")),
    ("auth / identity (login cache, Vault)", ("gateway/access/decorators.py", "gateway/access/identity.py",
                                              "gateway/access/authenticator.py",
                                              "gateway/access/credentials.py", "gateway/access/jwtcheck.py", "hvac/", "jwt/")),
    ("Flask / werkzeug (routing, request, response)", ("flask/", "werkzeug/", "gateway/http/errors.py",
                                                        "gateway/routes/")),
    ("gunicorn (HTTP parsing, sockets, threads)", ("gunicorn/",)),
]


def record(pids: list[int], seconds: int, out_dir: Path, rate: int = 100) -> list[Path]:
    """Profile every pid at once for `seconds`; returns the raw files written."""
    outputs = [out_dir / f"py-spy-{pid}.raw" for pid in pids]
    spies = [subprocess.Popen([str(BIN / "py-spy"), "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate),
                               "--nonblocking", "--gil", "-f", "raw", "-o", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid, out in zip(pids, outputs, strict=True)]
    try:
        for spy in spies:
            output, _ = spy.communicate(timeout=seconds + 60)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {output.strip()[-500:]}")
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
    return [out for out in outputs if out.exists()]


def parse(paths: list[Path]) -> list[tuple[list[tuple[str, str, str]], int]]:
    """[(frames root..leaf as (function, file, line), samples)]."""
    stacks = []
    for path in paths:
        for raw in path.read_text().splitlines():
            text, _, count = raw.rpartition(" ")
            if not text or not count.isdigit():
                continue
            frames = []
            for frame in text.split(";"):
                match = FRAME.match(frame)
                frames.append((match["func"], match["file"], match["line"] or "") if match else (frame, "", ""))
            stacks.append((frames, int(count)))
    return stacks


def _category(frames: list[tuple[str, str, str]]) -> str:
    files = [file for _, file, _ in frames]
    for name, patterns in ANYWHERE:
        if any(p in file for file in files for p in patterns):
            return name
    for func, file, _ in reversed(frames):
        for name, patterns in CATEGORIES:
            if any(p in f"{file}:{func}" if ":" in p else p in file for p in patterns):
                return name
    return "other (interpreter, stdlib, unattributed)"


# The steps of a Celery worker's life per task, for the worker profiles (main + pool processes): where
# the end-to-end row's worker CPU goes, compared between calc_hash and the no-op.
WORKER_STEPS: list[tuple[str, str]] = [
    ("consume + dispatch to the pool (main)", "Hub.create_loop"),
    ("task events: publish (buffered, main)", "EventDispatcher._publish"),
    ("kombu builds a Redis client per call (acks_late QoS.append, fanout puts)", "Channel._create_client"),
    ("run the task in the pool (tracer)", "build_tracer.<locals>.trace_task"),
    ("the task body: calc_hash", "calc_hash_task"),
    ("  of which Pillow's Image.open (is it an image?)", "open"),
    ("the task body: bench.noop", "noop"),
    ("store the result (backend)", "Backend.store_result"),
    ("outcome counts (tasks/__init__.py _count)", "_count"),
    ("logging (loguru Logger._log)", "Logger._log"),
]


def summarize(paths: list[Path], top: int = 15, worker: bool = False) -> dict[str, Any]:
    """Top functions by own time; for the gateway also the categories and the gateway's functions by
    inclusive time, for a worker the inclusive share of each step of WORKER_STEPS."""
    stacks = parse(paths)
    total = sum(count for _, count in stacks)
    if not total:
        return {"samples": 0, "top_self": [], "categories": [], "gateway_inclusive": []}
    own: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    categories: Counter[str] = Counter()
    for frames, count in stacks:
        func, file, _ = frames[-1]
        own[(func, file)] += count
        for key in {(f, fl) for f, fl, _ in frames}:
            inclusive[key] += count
        categories[_category(frames)] += count

    def pct(n: int) -> float:
        return round(100 * n / total, 1)

    if worker:
        by_name: Counter[str] = Counter()
        for (f, _), n in inclusive.items():
            by_name[f] += n
        return {"samples": total,
                "top_self": [{"function": f, "file": fl, "self_pct": pct(n), "total_pct": pct(inclusive[(f, fl)])}
                             for (f, fl), n in own.most_common(top)],
                "steps": [{"step": step, "function": func, "total_pct": pct(by_name[func])}
                          for step, func in WORKER_STEPS]}
    return {
        "samples": total,
        "top_self": [{"function": f, "file": fl, "self_pct": pct(n), "total_pct": pct(inclusive[(f, fl)])}
                     for (f, fl), n in own.most_common(top)],
        "categories": [{"category": name, "pct": pct(n)} for name, n in categories.most_common()],
        # The gateway's own functions by inclusive time: which step of the request path costs what.
        "gateway_inclusive": [{"function": f, "file": fl, "total_pct": pct(n)}
                              for (f, fl), n in inclusive.most_common()
                              if fl.startswith(("gateway/", "settings/", "tasks/"))][:20],
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.profile DIR_OR_RAW...`: summarize saved py-spy raw files again (e.g. after
    changing the categories), printed as JSON."""
    import json
    import sys

    paths = []
    for arg in (sys.argv[1:] if argv is None else argv):
        path = Path(arg)
        paths += sorted(path.glob("*.raw")) if path.is_dir() else [path]
    print(json.dumps(summarize(paths), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
