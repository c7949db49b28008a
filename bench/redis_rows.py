"""What a job costs Redis (issue 19, item 1) and how soon a worker picks a job up (item 4's measurement).

**Commands per job** (`./bench/run.sh --only redis`): Redis counts every command it runs, those a Lua
script runs included (the EVALSHA itself counts once more), in `INFO commandstats`. A row is a window:
`CONFIG RESETSTAT`, the row's jobs one after another, a short settle for the last job's trailing
acknowledgement, then `INFO commandstats`; the sum of `calls`, divided by the jobs, less the bench's own
commands in the window (its `CONFIG RESETSTAT`, and the completion polls of the gateway row, counted as
they are sent, on one connection opened before the window). Everything else running counts, as it
would in production: an idle worker's heartbeats and sweeps during a row are part of the row, and each
row says how much of it that is (the idle rate measured alone × the row's seconds ÷ its jobs).

Rows: stock Celery (`send_task` + a stock worker + `AsyncResult.get`, bench/stock.py) as the anchor;
the same client on the project's worker; gateway `POST /submit` + the project's worker; a first and a
second `GET /taskinfo` of each finished task; lifecycle = submit + run + one read. Plus Redis memory
(`used_memory`) per queued and per finished job, and idle commands per second of each worker.

**Pickup latency** (`./bench/run.sh --only pickup`): at low load, one job at a time with a random pause,
the time from `send_task` to `AsyncResult.get()` returning (the result arrives by the backend's pub/sub,
the same way for every row), for the project's worker on one queue and on three, and for a stock
worker on one and on three. send_task, not the gateway: the row isolates the worker's pickup.
"""
from __future__ import annotations

import json
import math
import os
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from redis import Redis

import celeryconfig
from bench import payload, stock
from bench.stack import HASH_QUEUE, Stack, StackError, wait_for
from devsupport import procfs
from jobs import stats

SETTLE = 1.0     # seconds after a row's last job before the window closes: its acknowledgement lands inside
POLL = 0.1       # seconds between the gateway row's completion polls (one HGETALL each, subtracted)
PROJECT_TASK = "jobs.calc_hash"
RESULT_TIMEOUT = 30.0
KEY_SAMPLE = 20   # finished jobs whose keys are sized one by one
TRACE_WIDTH = 160  # characters of a traced command kept (messages and results are kilobytes)

# issue 19, item 2
LIFECYCLE_TARGET = 1.6   # × stock Celery
TASKINFO_TARGET = 3.0    # commands per first read of a finished task
REREAD_TARGET = 2.0      # commands per second read
IDLE_TARGET = 1.0        # commands per second of an idle worker
PICKUP_TARGET = 1.2      # multi-queue p50 and p99 ÷ stock Celery's multi-queue


class Meter:
    """INFO commandstats of the bench Redis over a window, read on one dedicated connection opened (and
    authenticated) before any window, so its set-up commands are never counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = Redis.from_url(url, decode_responses=True, single_connection_client=True)
        self.client.ping()
        self._own: Counter[str] = Counter()
        self._started: float | None = None

    def close(self) -> None:
        self.client.close()

    def start(self) -> None:
        self._own = Counter({"config|resetstat": 1})  # counts itself once the stats are reset
        self.client.config_resetstat()
        self._started = time.monotonic()

    def own(self, command: str, n: int = 1) -> None:
        """The bench sent `n` × `command` (commandstats' lower-case name) inside the window."""
        self._own[command] += n

    def hgetall(self, key: str) -> dict[str, str]:
        """HGETALL on the meter's connection, counted as the bench's own when a window is open."""
        if self._started is not None:
            self.own("hgetall")
        return self.client.hgetall(key)

    def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - (self._started or time.monotonic())
        calls = self.read()
        self._started = None
        calls.subtract(self._own)
        negative = {name: n for name, n in calls.items() if n < 0}
        if negative:  # the bench's own count is exact; this would mean something reset the stats meanwhile
            raise StackError(f"commandstats below the bench's own commands: {negative}")
        return {"seconds": seconds, "calls": {name: n for name, n in calls.most_common() if n > 0},
                "own": dict(self._own)}

    def read(self) -> Counter[str]:
        """`cmdstat_<name>:calls=N,...` lines (Redis 7 names subcommands `config|resetstat`)."""
        info = self.client.info("commandstats")
        return Counter({key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in info.items()
                        if key.startswith("cmdstat_")})

    def memory(self) -> dict[str, int]:
        """used_memory (INFO), and from MEMORY STATS the dataset alone (used_memory less the server's and
        the clients' overhead: connection buffers move with traffic, not with jobs) and the key count.
        Never called inside a window."""
        if self._started is not None:
            raise StackError("memory read inside a commandstats window")
        stats_ = self.client.memory_stats()
        out = {"used_memory": int(self.client.info("memory")["used_memory"]),
               "dataset_bytes": int(stats_["dataset.bytes"]), "keys": int(stats_["keys.count"])}
        out.update({f"stats:{name}": int(value) for name, value in stats_.items()
                    if isinstance(value, int) and not name.startswith("peak")})
        return out


def _per_job(window: dict[str, Any], jobs: int) -> dict[str, Any]:
    total = sum(window["calls"].values())
    return {"jobs": jobs, "seconds": round(window["seconds"], 3), "calls": total, "per_job": total / jobs,
            "by_command": {name: n / jobs for name, n in window["calls"].items()}, "own": window["own"]}


def _memory_per_job(before: dict[str, int], after: dict[str, int], jobs: int) -> dict[str, float]:
    """Per job: used_memory, dataset bytes, keys; and every MEMORY STATS field that moved (the JSON's)."""
    return {name: (after[name] - before[name]) / jobs for name in before
            if name in after and (not name.startswith("stats:") or after[name] != before[name])}


def _idle(window: dict[str, Any]) -> dict[str, Any]:
    total = sum(window["calls"].values())
    return {"seconds": round(window["seconds"], 3), "calls": total, "per_s": total / window["seconds"],
            "by_command": {name: n / window["seconds"] for name, n in window["calls"].items()}}


class RedisRows:
    """The rows of `--only redis`, in this order, on a stack whose redis-server, OpenBao and gateway
    run and no worker: the gateway idle; the stock worker idle, then row 1; submissions with no worker
    (memory per queued job); the project's worker idle, then rows 2, 3 (with memory per finished job),
    4 and 5."""

    def __init__(self, stack: Stack, jobs: int, idle_seconds: int, content_bytes: int, auth: str,
                 progress: Callable[[str], None]) -> None:
        self.s, self.n, self.idle_seconds, self.progress = stack, jobs, idle_seconds, progress
        self.upload = payload.upload(content_bytes)
        self.body = json.dumps(payload.submit_body(content_bytes)).encode()
        self.headers = {"Authorization": auth, "Content-Type": "application/json"}
        self.http = requests.Session()
        self.rows: dict[str, dict[str, Any]] = {}
        self.idle: dict[str, dict[str, Any]] = {}
        self.memory: dict[str, Any] = {}
        self.traces: dict[str, list[str]] = {}
        self.traced_id = ""

    def run(self) -> dict[str, Any]:
        s, n = self.s, self.n
        self.meter = Meter(s.settings.broker_url)
        try:
            self.idle["gateway"] = self.idle_window("gateway and OpenBao only, no worker", max(2, self.idle_seconds // 4))

            self.memory_queued()  # first: nothing but the gateway has touched Redis yet

            self.progress("Redis commands: starting a stock Celery worker (bench/stock.py)")
            s.start_stock_worker((stock.QUEUES[0],))
            self.send_and_get(stock.TASK, stock.QUEUES[0])  # warm: connections, declarations, subscriptions
            self.idle["stock_worker"] = self.idle_window("stock worker (-E, acks_late), nothing to do", self.idle_seconds)
            self.rows["stock"] = self.sequential(
                "stock Celery: send_task + stock worker (-E, acks_late) + AsyncResult.get",
                lambda: self.send_and_get(stock.TASK, stock.QUEUES[0]), "stock_worker")
            self.trace("stock", lambda: self.send_and_get(stock.TASK, stock.QUEUES[0]))
            s.stop_stock_worker()

            self.progress("Redis commands: starting the project's worker (celery -A tasks worker -Q hash)")
            s.start_worker(HASH_QUEUE, noop=False)
            wait_for(lambda: self.finished() >= self.memory["finished_target"] and s.queue_depth() == 0,
                     60 + n / 5, "the queued jobs finished", (s._procs["worker"],))
            self.send_and_get(PROJECT_TASK, HASH_QUEUE)
            self.idle["worker"] = self.idle_window("project worker (-Q hash), nothing to do", self.idle_seconds)
            self.rows["bare_project"] = self.sequential(
                "the same send_task + AsyncResult.get on the project's worker (-Q hash)",
                lambda: self.send_and_get(PROJECT_TASK, HASH_QUEUE), "worker")
            ids = self.gateway_row()
            self.rows["taskinfo"] = self.reads("one GET /taskinfo of a finished task", ids)
            self.rows["taskinfo_again"] = self.reads("a second GET /taskinfo of the same task", ids)
            # traces last (MONITOR's own buffers never sit inside a memory measurement), one job each
            self.trace("bare_project", lambda: self.send_and_get(PROJECT_TASK, HASH_QUEUE))
            self.trace("gateway", self.submit_and_wait)
            traced = self.traced_id
            self.trace("taskinfo", lambda: (self.read(traced), traced)[1])
            self.trace("taskinfo_again", lambda: (self.read(traced), traced)[1])
            s.stop_worker()
        finally:
            self.meter.close()
            self.http.close()
        return self.result()

    # --- rows ----------------------------------------------------------------------------------------

    def idle_window(self, label: str, seconds: float) -> dict[str, Any]:
        self.progress(f"Redis commands: idle, {label} ({seconds:.0f}s)")
        time.sleep(2)  # start-up chatter (mingle, the first heartbeats) is not idling
        self.meter.start()
        time.sleep(seconds)
        return {"label": label, **_idle(self.meter.stop())}

    def send_and_get(self, task: str, queue: str) -> str:
        result = self.s.stock_app().send_task(task, kwargs={"upload": self.upload}, queue=queue)
        value = result.get(timeout=RESULT_TIMEOUT)
        if not (isinstance(value, dict) and value.get("digests", {}).get("sha256")):
            raise StackError(f"{task} on {queue} returned {value!r}")
        return result.id

    def sequential(self, label: str, one: Callable[[], Any], idle: str) -> dict[str, Any]:
        self.progress(f"Redis commands: {label} ({self.n} jobs, one after another)")
        self.meter.start()
        for _ in range(self.n):
            one()
        time.sleep(SETTLE)
        return {"label": label, "background": idle, **_per_job(self.meter.stop(), self.n)}

    def submit(self) -> str:
        response = self.http.post(self.s.gateway_url + "/submit", data=self.body, headers=self.headers, timeout=10)
        if response.status_code != 202:
            raise StackError(f"POST /submit answered {response.status_code}: {response.text[:300]}")
        return response.json()["uuid"]

    def finished(self, fields: dict[str, str] | None = None) -> int:
        """calc_hash jobs the workers finished, done or failed (the outcome counts, jobs/stats.py)."""
        fields = self.s.redis().hgetall(stats.TOTAL_KEY) if fields is None else fields
        return sum(int(v) for f, v in fields.items() if f == "done|calc_hash" or f.startswith("error|calc_hash|"))

    def memory_queued(self) -> None:
        """N submissions through the gateway with no worker: used_memory after − before, per job. One
        submission first, so per-client structures (owner index, rate-limit keys) are not counted."""
        self.progress(f"Redis memory: {self.n} submissions with no worker running")
        before_all = self.finished()
        self.submit()
        before = self.meter.memory()
        for _ in range(self.n):
            self.submit()
        self.memory.update(queued=_memory_per_job(before, self.meter.memory(), self.n), queued_jobs=self.n,
                           finished_target=before_all + self.n + 1)

    def gateway_row(self) -> list[str]:
        """N POST /submit, one after another, the worker running them as they come; the window closes once
        the outcome counts say all N finished (+ SETTLE). The polls are HGETALLs on the meter's own
        connection, subtracted exactly. used_memory before and after: memory per finished job."""
        label = "gateway POST /submit + the project's worker running it"
        self.progress(f"Redis commands: {label} ({self.n} jobs)")
        self.submit()  # this client's connection and the gateway's, warm
        wait_for(lambda: self.s.queue_depth() == 0, 30, "the warm-up job taken")
        time.sleep(SETTLE)
        base, failed0 = self.finished(), self._failed()
        memory0 = self.meter.memory()
        self.meter.start()
        ids = [self.submit() for _ in range(self.n)]
        deadline = time.monotonic() + 60 + self.n / 5
        while self.finished(self.meter.hgetall(stats.TOTAL_KEY)) < base + self.n:
            if time.monotonic() > deadline or "worker" not in self.s._procs or not self.s._procs["worker"].alive():
                raise StackError(f"{self.n} jobs submitted; not all finished")
            time.sleep(POLL)
        time.sleep(SETTLE)
        window = self.meter.stop()
        memory1 = self.meter.memory()
        failed = self._failed() - failed0
        if failed:
            raise StackError(f"{failed} of the gateway row's jobs failed")
        self.memory.update(finished=_memory_per_job(memory0, memory1, self.n), finished_jobs=self.n,
                           finished_keys=self.keys_of(ids[:KEY_SAMPLE]))
        self.rows["gateway"] = {"label": label, "background": "worker", **_per_job(window, self.n),
                                "polls": window["own"].get("hgetall", 0)}
        return ids

    def submit_and_wait(self) -> str:
        """One submission, then polls on the meter's connection (left out of traces) until it finished."""
        base = self.finished(self.meter.client.hgetall(stats.TOTAL_KEY))
        self.traced_id = self.submit()
        wait_for(lambda: self.finished(self.meter.client.hgetall(stats.TOTAL_KEY)) > base, 30, "the traced job finished")
        return self.traced_id

    def trace(self, key: str, action: Callable[[], Any]) -> None:
        s = self.s

        def groups() -> dict[str, list[int]]:
            out = {"gateway": s.gunicorn_pids(), "bench client": [os.getpid()]}
            if "worker" in s._procs:
                out.update({"worker main": [s.worker_pid], "worker pool": procfs.children(s.worker_pid)})
            if "stock-worker" in s._procs:
                out.update({"stock main": [s.stock_worker_pid], "stock pool": procfs.children(s.stock_worker_pid)})
            return out

        self.traces[key] = trace(self.meter, action, groups)

    def read(self, task_id: str) -> str:
        response = self.http.get(self.s.gateway_url + "/taskinfo", params={"taskid": task_id},
                                 headers={"Authorization": self.headers["Authorization"]}, timeout=10)
        return str(response.json().get("status")) if response.status_code == 200 else str(response.status_code)

    def keys_of(self, ids: list[str]) -> dict[str, Any]:
        """The keys whose names carry a finished job's id (SCAN, outside every window) and their MEMORY
        USAGE (exact, SAMPLES 0), per job over a sample: the job's own keys, without the index entries and
        whatever else the used_memory delta also catches."""
        client, names, total = self.s.redis(), Counter[str](), 0
        for task_id in ids:
            for key in client.scan_iter(match=f"*{task_id}*", count=1000):
                names[key.replace(task_id, "<id>")] += 1
                total += int(client.memory_usage(key, samples=0) or 0)
        return {"jobs": len(ids), "bytes_per_job": total / max(len(ids), 1),
                "keys_per_job": {name: n / len(ids) for name, n in names.most_common()}}

    def _failed(self) -> int:
        return sum(int(v) for f, v in self.s.redis().hgetall(stats.TOTAL_KEY).items() if f.startswith("error|calc_hash|"))

    def reads(self, label: str, ids: list[str]) -> dict[str, Any]:
        self.progress(f"Redis commands: {label} ({len(ids)} reads)")
        self.meter.start()
        statuses: Counter[str] = Counter()
        for task_id in ids:
            statuses[self.read(task_id)] += 1
        window = self.meter.stop()
        if set(statuses) != {"done"}:
            raise StackError(f"{label}: answers {dict(statuses)}, expected every task done")
        return {"label": label, "background": "worker", **_per_job(window, len(ids))}

    # --- result --------------------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        gateway_idle = self.idle["gateway"]["per_s"]
        for row in self.rows.values():  # what the idle processes alone would have cost during the row
            rate = self.idle[row["background"]]["per_s"]
            row["background_per_job"] = rate * row["seconds"] / row["jobs"]
            row["background_rate_per_s"] = rate
        rows, stock_row = self.rows, self.rows["stock"]
        by_command = Counter(rows["gateway"]["by_command"]) + Counter(rows["taskinfo"]["by_command"])
        lifecycle = rows["gateway"]["per_job"] + rows["taskinfo"]["per_job"]
        self.rows["lifecycle"] = {
            "label": "lifecycle: submit + run + one /taskinfo (3 + 4)", "jobs": self.n, "per_job": lifecycle,
            "by_command": dict(by_command.most_common()), "ratio_to_stock": lifecycle / stock_row["per_job"],
            "background_per_job": rows["gateway"]["background_per_job"] + rows["taskinfo"]["background_per_job"]}
        return {"jobs": self.n, "rows": self.rows, "idle": self.idle, "memory": self.memory,
                "gateway_idle_per_s": gateway_idle, "traces": self.traces}


def targets(redis: dict[str, Any]) -> list[dict[str, Any]]:
    """The Redis targets of issue 19, item 2, as the runner reports targets."""
    rows, idle = redis["rows"], redis["idle"]
    life, stock_row, info, again = rows["lifecycle"], rows["stock"], rows["taskinfo"], rows["taskinfo_again"]
    out = []

    def top(row: dict[str, Any], k: int = 6) -> str:
        return ", ".join(f"{name} {n:.1f}" for name, n in list(row["by_command"].items())[:k])

    ratio, allowed = life["ratio_to_stock"], LIFECYCLE_TARGET * stock_row["per_job"]
    out.append({"name": "Redis commands per job: lifecycle ÷ stock Celery", "value": ratio,
                "target": f"≤ {LIFECYCLE_TARGET}", "met": ratio <= LIFECYCLE_TARGET,
                "note": f"{life['per_job']:.1f} vs {stock_row['per_job']:.1f} commands per job"
                        + ("" if ratio <= LIFECYCLE_TARGET else f"; needs ≤ {allowed:.1f} (−{life['per_job'] - allowed:.1f})")
                        + f"; most: {top(life)}", "kind": "redis"})
    for row, limit, name in ((info, TASKINFO_TARGET, "one GET /taskinfo of a finished task"),
                             (again, REREAD_TARGET, "a second GET /taskinfo of the same task")):
        out.append({"name": f"Redis commands: {name}", "value": row["per_job"], "target": f"≤ {limit:g}",
                    "met": row["per_job"] <= limit, "note": f"{top(row, 8)}; {row['jobs']} reads", "kind": "redis"})
    worker = idle["worker"]
    out.append({"name": "Redis commands per second, idle project worker", "value": worker["per_s"],
                "target": f"≤ {IDLE_TARGET:g}", "met": worker["per_s"] <= IDLE_TARGET,
                "note": f"over {worker['seconds']:.0f} s: {_rates(worker)}; stock worker {idle['stock_worker']['per_s']:.2f}/s; "
                        f"gateway alone {idle['gateway']['per_s']:.2f}/s (included)", "kind": "redis"})
    return out


def _rates(idle: dict[str, Any], k: int = 8) -> str:
    return ", ".join(f"{name} {n:.2f}" for name, n in list(idle["by_command"].items())[:k])


# --- traces -------------------------------------------------------------------------------------------

def _socket_owners(groups: dict[str, list[int]]) -> dict[int, str]:
    """Local TCP port -> the name of the process group holding that socket (from /proc/net/tcp and each
    process's fds), so a traced command says which process sent it."""
    inodes: dict[str, str] = {}
    for name, pids in groups.items():
        for pid in pids:
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes[target[8:-1]] = name
            except OSError:
                continue
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ports[int(fields[1].rsplit(":", 1)[1], 16)] = inodes[fields[9]]
    return ports


def trace(meter: Meter, action: Callable[[], Any], groups: Callable[[], dict[str, list[int]]]) -> list[str]:
    """MONITOR around `action` (+ SETTLE), outside every window: each command in order, the process that
    sent it ('lua' inside a script), task ids and long values shortened. The meter's own connection is
    left out. For reading, beside the counts: which code sends what."""
    marker = f"bench-trace-end-{os.getpid()}-{time.monotonic_ns()}"
    hide = str(meter.client.client_info()["addr"]).rsplit(":", 1)[1]
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    monitor_client = Redis.from_url(meter.url, decode_responses=True)

    def listen() -> None:
        with monitor_client.monitor() as monitor:
            ready.set()
            while True:
                command = monitor.next_command()
                if marker in command["command"]:
                    return
                if command["client_port"] != hide:
                    seen.append(command)

    thread = threading.Thread(target=listen, name="bench-trace", daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    try:
        ids = action()
        time.sleep(SETTLE)
        owners = _socket_owners(groups())
    finally:
        meter.client.echo(marker)
        thread.join(10)
        monitor_client.close()
    ids = [ids] if isinstance(ids, str) else list(ids or [])
    t0 = seen[0]["time"] if seen else 0.0
    out = []
    for command in seen:
        port = command["client_port"]
        who = "lua" if command["client_type"] == "lua" else owners.get(int(port), f"port {port}") if port.isdigit() else port
        text = command["command"]
        for task_id in ids:
            text = text.replace(task_id, "<id>")
        if len(text) > TRACE_WIDTH:
            text = text[:TRACE_WIDTH] + f" …({len(text)} chars)"
        out.append(f"{command['time'] - t0:7.3f}s  {who:<12} {text}")
    return out


# --- pickup latency ------------------------------------------------------------------------------------

def _percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value at or above p % of the samples."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Pickup:
    """The rows of `--only pickup`: each starts its worker, sends one warm-up job, then `jobs` jobs one at
    a time (send_task, then AsyncResult.get), with a pause drawn uniformly from [0, pause] s between
    them (seeded), so jobs arrive at every phase of a worker's polling cycle; then stops the worker."""

    def __init__(self, stack: Stack, jobs: int, pause: float, content_bytes: int, progress: Callable[[str], None]) -> None:
        self.s, self.n, self.pause, self.progress = stack, jobs, pause, progress
        self.upload = payload.upload(content_bytes)

    def run(self) -> dict[str, Any]:
        s = self.s
        queues = self.project_queues()
        rows = {}
        plans: list[tuple[str, str, Callable[[], None], Callable[[], None], str, str]] = [
            ("project_one", f"project worker, -Q {HASH_QUEUE}", lambda: s.start_worker(HASH_QUEUE, noop=False),
             s.stop_worker, PROJECT_TASK, HASH_QUEUE),
            ("project_three", f"project worker, -Q {','.join(queues)}, jobs on {HASH_QUEUE}",
             lambda: s.start_worker(",".join(queues), noop=False), s.stop_worker, PROJECT_TASK, HASH_QUEUE),
            ("stock_one", f"stock Celery worker, -Q {stock.QUEUES[0]}", lambda: s.start_stock_worker(stock.QUEUES[:1]),
             s.stop_stock_worker, stock.TASK, stock.QUEUES[0]),
            ("stock_three", f"stock Celery worker, -Q {','.join(stock.QUEUES)}, jobs on {stock.QUEUES[0]}",
             lambda: s.start_stock_worker(stock.QUEUES), s.stop_stock_worker, stock.TASK, stock.QUEUES[0]),
        ]
        for key, label, start, stop, task, queue in plans:
            self.progress(f"pickup latency: {label} ({self.n} jobs, one at a time)")
            start()
            try:
                rows[key] = {"label": label, **self.row(task, queue)}
            finally:
                stop()
        return {"jobs": self.n, "pause_s": self.pause, "rows": rows}

    def project_queues(self) -> list[str]:
        """Every queue of the catalogue (hash, images, webhooks), hash first."""
        names = [q.name for q in celeryconfig.build(self.s.settings, role="worker")["task_queues"]]
        return [HASH_QUEUE] + [name for name in names if name != HASH_QUEUE]

    def row(self, task: str, queue: str) -> dict[str, Any]:
        app, rng = self.s.stock_app(), random.Random(19)
        send = lambda: app.send_task(task, kwargs={"upload": self.upload}, queue=queue).get(timeout=RESULT_TIMEOUT)
        send()  # warm-up
        latencies = []
        for _ in range(self.n):
            time.sleep(rng.uniform(0, self.pause))
            t0 = time.perf_counter()
            send()
            latencies.append(time.perf_counter() - t0)
        ms = [1000 * x for x in latencies]
        return {"jobs": self.n, "p50_ms": _percentile(ms, 50), "p99_ms": _percentile(ms, 99),
                "mean_ms": statistics.fmean(ms), "max_ms": max(ms), "min_ms": min(ms)}


def pickup_targets(pickup: dict[str, Any]) -> list[dict[str, Any]]:
    rows = pickup["rows"]
    ours, theirs = rows["project_three"], rows["stock_three"]
    out = []
    for p in ("p50", "p99"):
        ratio = ours[f"{p}_ms"] / theirs[f"{p}_ms"]
        out.append({"name": f"pickup {p}, worker on three queues ÷ stock Celery on three", "value": ratio,
                    "target": f"≤ {PICKUP_TARGET}", "met": ratio <= PICKUP_TARGET,
                    "note": f"{ours[f'{p}_ms']:.1f} vs {theirs[f'{p}_ms']:.1f} ms; one queue: project "
                            f"{rows['project_one'][f'{p}_ms']:.1f}, stock {rows['stock_one'][f'{p}_ms']:.1f} ms; "
                            f"{pickup['jobs']} jobs each", "kind": "pickup"})
    return out

