"""`./bench/run.sh [flags]`: bring up an isolated stack, measure every row of issue 5 in one run, print
a markdown report and write bench/results/<timestamp>.json (+ latest.json, latest.md).

Order of the rows, and why: HTTP rows first with no Celery worker running (messages pile up in Redis
and are flushed between rows), so the gateway, Flower and Redis have both cores to themselves; the
gateway's three are run straight to gunicorn and through nginx (the production path), interleaved; then
bare publishing; then the Vault rows (logins with one credential, then unauthenticated traffic); then
the rows that need the worker (end to end, memory); then the Redis rows (commands and memory per job,
idle workers) and the pickup-latency rows, each starting and stopping its own workers
(bench/redis_rows.py); profiles last. `--only auth` runs just the four unauthenticated-traffic rows
against a fresh stack (about a minute); `--only proxy`, `--only redis` and `--only pickup` just theirs; `--only wait` the
cost of WAIT-based acknowledgement (`queue.wait_replicas` 1, a replica on loopback) against /submit without.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

from bench import payload, procs, profile, redis_rows, report
from bench.load import Request, Wrk, fire
from bench.stack import HASH_QUEUE, STOCK_NODE, WORKER_NODE, Stack, StackError, wait_for
from devsupport import jwt as devjwt
from devsupport import procfs
from devsupport.processes import ROOT
from devsupport.vault import bao_binary
from jobs import stats

RESULTS = ROOT / "bench" / "results"
USER = "copytrust"        # the cached credential of every gateway row (may submit calc_hash)
FRESH_USER = "service"    # used for nothing else, so its 1,000 requests start with a cold cache
GUESSED_USER = "guessed"  # the wrong-password row's victim; no other row logs in as it
AUTH_TARGET = 10          # Vault calls per 1,000 unauthenticated requests, each auth row
# The unauthenticated-traffic rows: key -> label. Each comes from its own loopback address (127.0.0.2,
# .3, ...), one attacker machine per row, so one row's per-source throttling does not carry into the
# next, nor into the other rows (wrk and the login count come from 127.0.0.1).
AUTH_ROWS = {
    "garbage_repeated": "one garbage bearer token, repeated",
    "garbage_distinct": "distinct garbage bearer tokens of JWT shape",
    "unknown_key": "distinct RS256 tokens, right iss/aud/exp, signed by an unknown key",
    "wrong_passwords": f"distinct wrong passwords for one userpass user ({GUESSED_USER})",
}


WAIT_TIMEOUT_MS = 200  # the `wait` rows' queue.wait_timeout_ms: the default
ONLY_LOAD = {"submit": "/ping, /submit", "wait": "/submit without and with WAIT for one replica (two gateways)"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./bench/run.sh", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=int, default=15, help="seconds of each measured wrk row")
    p.add_argument("--rounds", type=int, default=5,
                   help="the /ping, /submit, /taskinfo rows run in this many interleaved turns of duration/rounds s")
    p.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured wrk load before each row")
    p.add_argument("--connections", type=int, default=32, help="wrk -c")
    p.add_argument("--threads", type=int, default=2, help="wrk -t")
    p.add_argument("--content-bytes", type=int, default=1024, help="calc_hash content size (before base64)")
    p.add_argument("--publish-count", type=int, default=5000, help="messages per bare-publish row")
    p.add_argument("--login-requests", type=int, default=1000, help="requests of the Vault-login count")
    p.add_argument("--auth-requests", type=int, default=1000, help="requests of each unauthenticated-traffic row")
    p.add_argument("--auth-concurrency", type=int, default=16, help="concurrent clients of those rows")
    p.add_argument("--only", choices=("all", "auth", "submit", "proxy", "redis", "pickup", "wait"), default="all",
                   help="auth: only the unauthenticated-traffic rows (Vault calls per 1,000 refused requests); "
                        "submit: only /ping and /submit, interleaved; proxy: only /ping, /submit and /taskinfo, "
                        "straight to gunicorn and through nginx, interleaved; redis: only the Redis commands per "
                        "job, memory per job and idle workers' commands; pickup: only the multi-queue pickup latency; "
                        "wait: /submit without and with WAIT-based acknowledgement (one replica), interleaved")
    p.add_argument("--proxy", choices=("yes", "no"), default="yes",
                   help="also run /ping, /submit and /taskinfo through nginx (deploy/nginx.py's production "
                        "configuration), interleaved with the direct rows")
    p.add_argument("--redis-jobs", type=int, default=300,
                   help="jobs per Redis-commands row, one after another (0: skip those rows in a full run)")
    p.add_argument("--idle-seconds", type=int, default=20, help="seconds of each idle worker's command count")
    p.add_argument("--pickup-jobs", type=int, default=100,
                   help="jobs per pickup-latency row, one at a time (0: skip those rows in a full run)")
    p.add_argument("--pickup-pause", type=float, default=0.2,
                   help="pause before each pickup job, drawn uniformly from [0, this] seconds")
    p.add_argument("--redis-persistence", choices=("none", "everysec", "always"), default="none",
                   help="the bench Redis's AOF: none, or appendonly with this appendfsync (compose: always)")
    p.add_argument("--e2e-jobs", type=int, default=2000, help="jobs per end-to-end row")
    p.add_argument("--memory-submissions", type=int, default=100_000, help="submissions of the memory row (0: skip)")
    p.add_argument("--memory-samples", type=int, default=10, help="RSS samples over the memory row")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="py-spy the gunicorn workers: when a target is missed, always, or never")
    p.add_argument("--profile-duration", type=int, default=10, help="seconds of each py-spy recording")
    p.add_argument("--results", type=Path, default=RESULTS, help="where result files go")
    args = p.parse_args(argv)
    if args.only == "proxy" and args.proxy == "no":
        p.error("--only proxy needs the nginx rows (--proxy yes)")
    return args


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace, stamp: str) -> None:
        self.s, self.args, self.stamp = stack, args, stamp
        self.http: dict[str, dict[str, Any]] = {}
        self.publish: dict[str, dict[str, Any]] = {}
        self.e2e: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}
        self.auth: dict[str, dict[str, Any]] = {}
        self.ceiling: dict[str, Any] = {}
        self.redis: dict[str, Any] | None = None
        self.pickup: dict[str, Any] | None = None
        self.proxy: dict[str, Any] | None = None

    # --- helpers ---------------------------------------------------------------------------------------

    def _basic(self, user: str) -> str:
        name, password = self.s.vault.basic(user)
        return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()

    def _submit_request(self, user: str = USER, base: str | None = None) -> Request:
        return Request((base or self.s.gateway_url) + "/submit", "POST", self.body_file, self._basic(user))

    def _check(self, request: Request, expect: int) -> requests.Response:
        """One request before a row: the row measures what it claims, not a stream of errors."""
        headers = {"Authorization": request.auth} if request.auth else {}
        data = request.body_file.read_bytes() if request.body_file else None
        if data:
            headers["Content-Type"] = "application/json"
        response = requests.request(request.method, request.url, data=data, headers=headers, timeout=10)
        if response.status_code != expect:
            raise StackError(f"{request.method} {request.url} answered {response.status_code}, expected {expect}: "
                             f"{response.text[:300]}")
        return response

    def _progress(self, text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    def _measure(self, request: Request, seconds: int, server: Any, proxy: Any = None) -> dict[str, Any]:
        """One wrk run, with the CPU the server processes, redis-server and (`proxy`: nginx's processes)
        burned during it."""
        groups = {"server": server, "redis": lambda: [self.s.redis_pid]} | ({"proxy": proxy} if proxy else {})
        meter = procs.CpuMeter(**groups).start()
        result = self.wrk.run(request, seconds)
        cpu = meter.stop()
        return {**result.to_dict(), "server_cpu_s": cpu["server"], "redis_cpu_s": cpu["redis"],
                "proxy_cpu_s": cpu.get("proxy"), "server_processes_changed": bool({"server", "proxy"} & set(meter.changed))}

    @staticmethod
    def _row(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
        """Runs of one row merged: throughput and CPU over all of them, latency percentiles as the median
        of the runs' (wrk histograms cannot be merged from its summary), every run kept."""
        requests_, seconds = sum(r["requests"] for r in runs), sum(r["seconds"] for r in runs)
        return {"label": label, "requests": requests_, "seconds": round(seconds, 3), "rps": requests_ / seconds,
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "p99_over_p50": statistics.median(r["p99_ms"] / r["p50_ms"] for r in runs),
                "max_ms": max(r["max_ms"] for r in runs),
                "server_cpu_ms": 1000 * sum(r["server_cpu_s"] for r in runs) / max(requests_, 1),
                "redis_cpu_ms": 1000 * sum(r["redis_cpu_s"] for r in runs) / max(requests_, 1),
                "proxy_cpu_ms": None if runs[0]["proxy_cpu_s"] is None else
                                1000 * sum(r["proxy_cpu_s"] for r in runs) / max(requests_, 1),
                "non_2xx": sum(r["non_2xx"] for r in runs), "socket_errors": sum(r["socket_errors"] for r in runs),
                "server_processes_changed": any(r["server_processes_changed"] for r in runs),
                "runs": [{k: r[k] for k in ("requests", "seconds", "rps", "p50_ms", "p99_ms")} for r in runs],
                "argv": runs[0]["argv"]}

    def http_row(self, key: str, label: str, request: Request, expect: int, server: Any) -> dict[str, Any]:
        self._progress(f"{label} ({self.args.duration}s)")
        self._check(request, expect)
        if self.args.warmup:
            self.wrk.run(request, self.args.warmup)
        self.http[key] = self._row(label, [self._measure(request, self.args.duration, server)])
        return self.http[key]

    def interleaved(self, rows: list[tuple[str, str, Request, int]]) -> None:
        """Rows compared with each other, measured in turns (A B C A B C ...) of duration/rounds seconds,
        so a neighbour's load on the shared machine hits them alike; ratios are taken per round. A row
        whose key starts with `proxy_` goes through nginx: its server is the gunicorn behind nginx, and
        nginx's own CPU is counted apart."""
        rounds = self.args.rounds
        seconds = max(2, self.args.duration // rounds)
        for _key, _label, request, expect in rows:
            self._check(request, expect)
            if self.args.warmup:
                self.wrk.run(request, self.args.warmup)
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in rows}
        for i in range(rounds):
            self._progress(f"round {i + 1}/{rounds}: " + ", ".join(key for key, *_ in rows) + f" ({seconds}s each)")
            for key, _label, request, _expect in rows:
                if key.startswith("proxy_"):
                    runs[key].append(self._measure(request, seconds, self.s.proxied_gunicorn_pids, self.s.nginx_pids))
                else:
                    runs[key].append(self._measure(request, seconds, self.s.gunicorn_pids))
        for key, label, *_ in rows:
            self.http[key] = self._row(label, runs[key])
        self.rounds = runs

    def proxy_ratios(self) -> list[dict[str, Any]]:
        """What a user behind nginx gets: the issue's ratios computed on the nginx rows, the same ratios on
        the direct rows beside them, and each nginx row against its direct twin; medians of the per-round
        ratios, as for the targets."""
        runs = self.rounds

        def ratio(name: str, a: str, b: str, target: str = "") -> dict[str, Any]:
            values = [x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b], strict=True)]
            return {"name": name, "value": statistics.median(values), "target": target, "rounds": values}

        out = []
        for prefix, how in (("proxy_", "through nginx"), ("", "direct")):
            out += [ratio(f"{how}: /submit ÷ /ping", prefix + "submit", prefix + "ceiling", "≥ 0.50"),
                    ratio(f"{how}: /taskinfo ÷ /ping", prefix + "taskinfo", prefix + "ceiling", "≥ 0.70")]
            out.append({"name": f"{how}: /submit p99 ÷ p50", "value": self.http[prefix + "submit"]["p99_over_p50"],
                        "target": "≤ 3.0", "rounds": [r["p99_ms"] / r["p50_ms"] for r in runs[prefix + "submit"]]})
        for key, path in (("ceiling", "/ping"), ("submit", "/submit"), ("taskinfo", "/taskinfo")):
            out.append(ratio(f"{path} through nginx ÷ direct", "proxy_" + key, key))
        return out

    def gateway_rows(self, proxy: bool) -> list[tuple[str, str, Request, int]]:
        """/ping, /submit and /taskinfo straight to gunicorn and, with `proxy`, the same three through
        nginx (the production path), same credential, body and done task."""
        rows = []
        for prefix, base, how in (("", self.s.gateway_url, "gateway"),
                                  ("proxy_", self.s.proxy_url if proxy else "", "nginx → gateway")):
            if not base:
                continue
            rows += [
                (prefix + "ceiling", f"{how} GET /ping" + ("" if prefix else " (HTTP ceiling)"), Request(base + "/ping"), 200),
                (prefix + "submit", f"{how} POST /submit calc_hash 1 KiB, cached Basic credential",
                 self._submit_request(base=base), 202),
                (prefix + "taskinfo", f"{how} GET /taskinfo on a done task",
                 Request(f"{base}/taskinfo?taskid={self.done_id}", auth=self._basic(USER)), 200),
            ]
        return rows

    # --- rows ------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s, args = self.s, self.args
        self._progress("starting redis-server, OpenBao (bao server -dev) and the gateway")
        s.start_base()
        self.body_file = s.dir / "submit.json"
        self.body_file.write_text(json.dumps(payload.submit_body(args.content_bytes)))
        if args.only == "auth":
            self.auth_rows()
            return {"http": {}, "publish": {}, "e2e": {}, "vault_logins": {}, "auth": self.auth, "ceiling": {},
                    "targets": self.auth_targets(), "comparisons": [], "memory": None, "profiles": {}}
        if args.only in ("redis", "pickup"):
            if args.only == "redis":
                self.redis_rows()
            else:
                self.pickup_rows()
            return {"http": {}, "publish": {}, "e2e": {}, "vault_logins": {}, "auth": {}, "ceiling": {},
                    "targets": self.redis_targets(), "comparisons": [], "memory": None, "profiles": {},
                    "redis": self.redis, "pickup": self.pickup}
        self.wrk = Wrk(args.threads, args.connections, dict(os.environ))
        gw = s.gateway_url
        if args.only == "wait":
            self._progress("starting a replica and a second gateway with queue.wait_replicas 1")
            s.start_replica()
            s.start_waiting_gateway(1, WAIT_TIMEOUT_MS)
            waiting = Request(s.waiting_gateway_url + "/submit", "POST", self.body_file, self._basic(USER))
            self.interleaved([
                ("submit", "gateway POST /submit calc_hash 1 KiB, no WAIT (queue.wait_replicas 0, the default)",
                 self._submit_request(), 202),
                ("submit_wait", f"gateway POST /submit, WAIT for 1 replica (queue.wait_replicas 1, {WAIT_TIMEOUT_MS} ms)",
                 waiting, 202),
            ], lambda: [*s.gunicorn_pids(), *procfs.tree(s.waiting_gunicorn_pid)])
            return {"http": self.http, "publish": {}, "e2e": {}, "vault_logins": {}, "auth": {}, "ceiling": {},
                    "targets": [], "comparisons": [], "memory": None, "profiles": {}}
        if args.only == "submit":
            self.interleaved([
                ("ceiling", "gateway GET /ping (HTTP ceiling)", Request(gw + "/ping"), 200),
                ("submit", "gateway POST /submit calc_hash 1 KiB, cached Basic credential", self._submit_request(), 202),
            ])
            return {"http": self.http, "publish": {}, "e2e": {}, "vault_logins": {}, "auth": {}, "ceiling": {},
                    "targets": [], "comparisons": [], "memory": None, "profiles": {}}

        done_id = self.done_id = self.done_task()
        keep = frozenset({done_id})
        proxy = args.proxy == "yes"
        if proxy:
            self._progress("starting nginx (deploy/nginx.py's configuration) in front of a second gateway")
            s.start_proxy()
        logins = s.vault.logins()
        self.interleaved(self.gateway_rows(proxy))
        self.extra["gateway_rows_vault_logins"] = s.vault.logins() - logins
        if proxy:
            s.stop_proxy()
            self.proxy = self.proxy_ratios()
        s.flush(keep)
        if args.only == "proxy":
            return {"http": self.http, "publish": {}, "e2e": {}, "vault_logins": {}, "auth": {}, "ceiling": {},
                    "targets": [], "comparisons": [], "memory": None, "profiles": {}, "proxy": self.proxy}

        self._progress("starting Flower")
        s.start_flower()
        flower_body = s.dir / "flower.json"
        flower_body.write_text(json.dumps(self.flower_options()))
        self.http_row("flower_apply", "Flower POST /api/task/async-apply/jobs.calc_hash",
                      Request(f"{s.flower_url}/api/task/async-apply/jobs.calc_hash", "POST", flower_body), 200,
                      lambda: [s.flower_pid])
        s.flush(keep)
        self.http_row("flower_result", "Flower GET /api/task/result/<id> on a done task",
                      Request(f"{s.flower_url}/api/task/result/{done_id}"), 200, lambda: [s.flower_pid])
        s.stop_flower()

        self.publish_row("with_backend", "bare send_task, Redis result backend configured (workers' config)", "worker")
        s.flush(keep)
        self.publish_row("no_backend", "bare send_task, no result backend (gateway's config)", "gateway")
        s.flush(keep)

        self.vault_logins()
        s.flush(keep)
        self.auth_rows()
        s.flush(keep)

        self._progress("starting the Celery worker for the end-to-end and memory rows")
        s.start_worker()
        self.e2e_gateway()
        self.e2e_bare()
        memory = self.memory() if args.memory_submissions else None
        s.stop_worker()
        s.flush(keep)
        if args.redis_jobs:
            self.redis_rows()
            s.flush(keep)
        if args.pickup_jobs:
            self.pickup_rows()
            s.flush(keep)

        targets, comparisons = self.targets()
        profiles = self.profiles(targets)
        return {"http": self.http, "publish": self.publish, "e2e": self.e2e, "vault_logins": self.extra,
                "auth": self.auth, "ceiling": self.ceiling, "targets": targets, "comparisons": comparisons,
                "memory": memory, "profiles": profiles, "redis": self.redis, "pickup": self.pickup,
                "proxy": self.proxy}

    def redis_rows(self) -> None:
        """Redis commands per job, memory per job, idle workers' commands (bench/redis_rows.py)."""
        args = self.args
        self.redis = redis_rows.RedisRows(self.s, args.redis_jobs, args.idle_seconds, args.content_bytes,
                                          self._basic(USER), self._progress).run()
        path = args.results / f"{self.stamp}-redis-traces.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"## {key}\n" + "\n".join(lines) + "\n\n" for key, lines in self.redis["traces"].items()))
        self.redis["traces_file"] = self._shown(path)

    def pickup_rows(self) -> None:
        """Multi-queue pickup latency (bench/redis_rows.py)."""
        args = self.args
        self.pickup = redis_rows.Pickup(self.s, args.pickup_jobs, args.pickup_pause, args.content_bytes,
                                        self._progress).run()

    def redis_targets(self) -> list[dict[str, Any]]:
        return ((redis_rows.targets(self.redis) if self.redis else []) +
                (redis_rows.pickup_targets(self.pickup) if self.pickup else []))

    def done_task(self) -> str:
        """Submit one calc_hash, let a worker finish it, stop the worker: the task of /taskinfo rows."""
        self._progress("one calc_hash through a worker, for the done-task rows")
        self.s.start_worker()
        task_id = self._check(self._submit_request(), 202).json()["uuid"]
        auth = {"Authorization": self._basic(USER)}
        wait_for(lambda: requests.get(f"{self.s.gateway_url}/taskinfo", params={"taskid": task_id}, headers=auth,
                                      timeout=2).json().get("status") == "done", 30, f"task {task_id} done")
        self.s.stop_worker()
        return task_id

    def flower_options(self) -> dict[str, Any]:
        """The gateway's send_task arguments, as Flower's async-apply body (kwargs, queue, expires in
        seconds, limits, the same custom headers)."""
        job = self.s.settings.config["jobs"]["calc_hash"]
        return {"kwargs": {"upload": payload.upload(self.args.content_bytes)}, "queue": job["queue"],
                "expires": job["ttl"], "time_limit": job["time_limit"], "soft_time_limit": job["soft_time_limit"],
                "headers": {"gateway_client_id": "bench", "gateway_job_type": "calc_hash",
                            "gateway_submitted_at": time.time()}}

    def _publisher(self, role: str, task: str, count: int, mirror: bool) -> subprocess.Popen:
        argv = [sys.executable, "-m", "bench.publish", "--role", role, "--task", task, "--count", str(count),
                "--content-bytes", str(self.args.content_bytes)] + (["--mirror-gateway"] if mirror else [])
        return subprocess.Popen(argv, cwd=ROOT, env=self.s.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    @staticmethod
    def _finish(proc: subprocess.Popen, timeout: float = 300) -> dict[str, Any]:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            raise StackError(f"publisher failed ({proc.returncode}): {err.strip()[-800:]}")
        return json.loads(out.strip().splitlines()[-1])

    def publish_row(self, key: str, label: str, role: str) -> None:
        self._progress(f"{label} ({self.args.publish_count} messages)")
        meter = procs.CpuMeter(redis=lambda: [self.s.redis_pid]).start()
        data = self._finish(self._publisher(role, "jobs.calc_hash", self.args.publish_count, mirror=True))
        cpu = meter.stop()
        queued = self.s.queue_depth()
        self.publish[key] = {"label": label, "count": data["count"], "seconds": round(data["seconds"], 3),
                             "msgs_per_s": data["count"] / data["seconds"],
                             "cpu_ms": 1000 * data["cpu_seconds"] / data["count"],
                             "redis_cpu_ms": 1000 * cpu["redis"] / data["count"], "queued": queued}

    def vault_logins(self) -> None:
        """N submissions with one credential the gateway has never seen, `connections` at a time: how
        many reach Vault (the login cache should make it one per gunicorn worker at most), counted by
        OpenBao's audit device."""
        n = self.args.login_requests
        self._progress(f"Vault logins for {n} requests with one fresh credential")
        body, auth = self.body_file.read_bytes(), self._basic(FRESH_USER)
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        vault = self.s.vault
        logins, reads = vault.logins(), vault.entity_reads()
        fired = fire(n, self.args.connections,
                     lambda session, _: session.post(self.s.gateway_url + "/submit", data=body, headers=headers,
                                                     timeout=10))
        self.extra.update(requests=n, concurrency=self.args.connections, statuses=fired["statuses"],
                          logins=vault.logins() - logins, entity_reads=vault.entity_reads() - reads,
                          gunicorn_workers=self.s.gateway_workers)

    def auth_credentials(self, key: str, n: int) -> list[str]:
        """The Authorization headers of one unauthenticated-traffic row, made before it starts."""
        if key == "garbage_repeated":
            return ["Bearer aaa.bbb.ccc"] * n
        if key == "garbage_distinct":
            return [f"Bearer {secrets.token_urlsafe(27)}.{secrets.token_urlsafe(90)}.{secrets.token_urlsafe(64)}"
                    for _ in range(n)]
        if key == "unknown_key":
            stranger = devjwt.new_key_pair()[0]  # well-formed, plausible claims; Vault never saw this key
            return ["Bearer " + devjwt.mint(stranger, devjwt.demo_claims(f"intruder-{i}", "client-admin", "admin"))
                    for i in range(n)]
        if key == "wrong_passwords":
            guesses = (f"guess-{i}-{secrets.token_urlsafe(6)}" for i in range(n))  # never the real one
            return ["Basic " + base64.b64encode(f"{GUESSED_USER}:{pw}".encode()).decode() for pw in guesses]
        raise ValueError(key)

    def auth_rows(self) -> None:
        """Each row: `--auth-requests` POST /submit with credentials Vault would refuse, from one source
        address, `--auth-concurrency` at a time; how many requests reached Vault (its audit device, any
        path: logins, key reads, entity reads) and what the clients got back. The gateway runs with the
        shipped failed-auth throttle (config unchanged)."""
        n, concurrency = self.args.auth_requests, self.args.auth_concurrency
        url, body, vault = self.s.gateway_url + "/submit", self.body_file.read_bytes(), self.s.vault
        for index, (key, label) in enumerate(AUTH_ROWS.items()):
            source = f"127.0.0.{2 + index}"
            self._progress(f"unauthenticated traffic: {label} ({n} requests, {concurrency} at a time, from {source})")
            headers = [{"Authorization": auth, "Content-Type": "application/json"}
                       for auth in self.auth_credentials(key, n)]

            def post(session: requests.Session, i: int, headers: list[dict[str, str]] = headers) -> requests.Response:
                return session.post(url, data=body, headers=headers[i], timeout=10)

            calls, logins = vault.calls(), vault.logins()
            fired = fire(n, concurrency, post, source=source)
            calls, logins = vault.calls() - calls, vault.logins() - logins
            self.auth[key] = {"label": label, "requests": n, "concurrency": concurrency, "source": source,
                              "seconds": fired["seconds"], "statuses": fired["statuses"], "vault_calls": calls,
                              "vault_logins": logins, "vault_calls_per_1000": 1000 * calls / n}

    def auth_targets(self) -> list[dict[str, Any]]:
        """Per row: Vault calls per 1,000 requests ≤ AUTH_TARGET, and every answer a refusal (401, or
        429 from the throttle); anything else (a 2xx, a 5xx) fails the row whatever the count."""
        out = []
        for row in self.auth.values():
            value = row["vault_calls_per_1000"]
            odd = {status: count for status, count in row["statuses"].items() if status not in (401, 429)}
            note = (f"{row['vault_calls']} Vault calls ({row['vault_logins']} logins) for {row['requests']:,} "
                    f"requests, {row['concurrency']} concurrent from {row['source']}; statuses {row['statuses']}")
            if odd:
                note = f"unexpected statuses {odd}; " + note
            out.append({"name": f"Vault calls per 1,000 requests: {row['label']}", "value": value,
                        "target": f"≤ {AUTH_TARGET}", "met": value <= AUTH_TARGET and not odd, "note": note,
                        "kind": "auth"})
        return out

    def _finished(self, job_type: str) -> int:
        fields = self.s.redis().hgetall(stats.TOTAL_KEY)
        return sum(int(v) for f, v in fields.items()
                   if f == f"done|{job_type}" or f.startswith(f"error|{job_type}|"))

    def _failed(self, job_type: str) -> int:
        fields = self.s.redis().hgetall(stats.TOTAL_KEY)
        return sum(int(v) for f, v in fields.items() if f.startswith(f"error|{job_type}|"))

    def _when_finished(self, job_type: str, target: int, timeout: float) -> float:
        """Poll the workers' outcome counts until `target` jobs of the type finished; when that was."""
        return wait_for(lambda: time.time() if self._finished(job_type) >= target else None, timeout,
                        f"{target} {job_type} jobs finished", (self.s._procs["worker"],))

    def _e2e_meter(self, **extra: Any) -> procs.CpuMeter:
        return procs.CpuMeter(worker=self.s.worker_pids, redis=lambda: [self.s.redis_pid], **extra).start()

    def e2e_gateway(self) -> None:
        m = self.args.e2e_jobs
        self._progress(f"end to end: {m} calc_hash jobs through the gateway and the worker")
        submitted_field = "submitted|calc_hash"
        s0, f0, failed0 = self.s.counter(submitted_field), self._finished("calc_hash"), self._failed("calc_hash")
        meter = self._e2e_meter(gateway=self.s.gunicorn_pids)
        started = time.time()
        load = self.wrk.run_until(self._submit_request(), lambda: self.s.counter(submitted_field) - s0 >= m, cap=600)
        accepted = self.s.counter(submitted_field) - s0
        finished_at = self._when_finished("calc_hash", f0 + accepted, 60 + accepted / 5)
        cpu = meter.stop()
        self.e2e["gateway_calc_hash"] = self._e2e_row(
            "calc_hash 1 KiB via gateway POST /submit (wrk) + worker", accepted, finished_at - started, cpu,
            self._failed("calc_hash") - failed0, submit_rps=load.rps, submit_non_2xx=load.non_2xx)

    def e2e_bare(self) -> None:
        m = self.args.e2e_jobs
        self._progress(f"end to end: {m} bench.noop jobs published by bare send_task, same worker")
        f0 = self._finished("bench.noop")
        meter = self._e2e_meter()
        proc = self._publisher("gateway", "bench.noop", m, mirror=False)
        finished_at = self._when_finished("bench.noop", f0 + m + 1, 60 + m / 5)  # +1: the publisher's warm-up
        data = self._finish(proc)
        cpu = meter.stop()
        cpu["publisher"] = data["cpu_seconds"]
        self.e2e["bare_noop"] = self._e2e_row("bench.noop via bare send_task (1 process) + worker", m,
                                              finished_at - data["first_send"], cpu, self._failed("bench.noop"))

    @staticmethod
    def _e2e_row(label: str, jobs: int, seconds: float, cpu: dict[str, float], failed: int, **more: Any) -> dict:
        return {"label": label, "jobs": jobs, "seconds": round(seconds, 3), "jobs_per_s": jobs / seconds,
                "cpu_ms": {name: 1000 * value / max(jobs, 1) for name, value in cpu.items()}, "failed": failed,
                **more}

    def memory(self) -> dict[str, Any]:
        """K submissions in `memory_samples` equal steps, RSS of every gateway and Celery process after
        each; the worker keeps consuming meanwhile (the queue may grow; processed shows how far it got)."""
        k, samples = self.args.memory_submissions, self.args.memory_samples
        self._progress(f"memory: {k:,} submissions, RSS sampled every {k // samples:,}")
        field = "submitted|calc_hash"
        base, done0 = self.s.counter(field), self._finished("calc_hash")
        started = time.monotonic()
        series = [self._rss(0, 0, started)]
        for i in range(1, samples + 1):
            target = base + (k * i) // samples
            self.wrk.run_until(self._submit_request(), lambda target=target: self.s.counter(field) >= target, cap=900)
            series.append(self._rss(self.s.counter(field) - base, self._finished("calc_hash") - done0, started))
            self._progress(f"memory: {series[-1]['submitted']:,} submitted, {series[-1]['processed']:,} processed")
        return {"submissions": k, "series": series, "verdicts": _verdicts(series)}

    def _rss(self, submitted: int, processed: int, started: float) -> dict[str, Any]:
        rss: dict[str, float | None] = {}
        for i, pid in enumerate(self.s.gunicorn_workers()):
            rss[f"gunicorn worker {i + 1}"] = procfs.rss_mib(pid)
        rss["gunicorn master"] = procfs.rss_mib(self.s.gunicorn_pid)
        rss["celery main"] = procfs.rss_mib(self.s.worker_pid)
        for i, pid in enumerate(procfs.children(self.s.worker_pid)):
            rss[f"celery pool {i + 1}"] = procfs.rss_mib(pid)
        rss["redis-server"] = procfs.rss_mib(self.s.redis_pid)
        return {"submitted": submitted, "processed": processed, "queue_depth": self.s.queue_depth(),
                "elapsed_s": round(time.monotonic() - started, 1), "rss_mib": rss}

    # --- verdicts and profiles ---------------------------------------------------------------------------

    def targets(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        h, e, v = self.http, self.e2e, self.extra
        submit, info, ceiling = h["submit"], h["taskinfo"], h["ceiling"]
        per_round = {key: [a["rps"] / b["rps"] for a, b in zip(self.rounds[key], self.rounds["ceiling"], strict=True)]
                     for key in ("submit", "taskinfo")}
        pings = [r["rps"] for r in self.rounds["ceiling"]]
        spread = (max(pings) - min(pings)) / statistics.median(pings)
        self.ceiling = {"rps_per_round": pings, "spread": round(spread, 3), "ratios_per_round": per_round}
        noisy = f"; /ping varied {100 * spread:.0f}% across rounds" if spread > 0.15 else ""
        out = []
        invalid = {key: row for key, row in h.items() if _errors(row) > 0.01 * max(row["requests"], 1)}

        def add(name: str, value: float, target: str, met: bool, note: str, rows: tuple[str, ...] = ()) -> None:
            bad = [key for key in rows if key in invalid]
            if bad:  # a row that mostly measured error responses proves nothing either way
                met, note = False, f"INVALID: errors in {', '.join(bad)}; " + note
            out.append({"name": name, "value": value, "target": target, "met": met, "note": note})

        def rounds(values: list[float]) -> str:
            return "rounds " + ", ".join(f"{x:.2f}" for x in values)

        def cpu_ratio(key: str) -> str:
            """On a CPU-bound box req/s goes as 1 / CPU per request: a noise-resistant cross-check."""
            cost = lambda row: row["server_cpu_ms"] + row["redis_cpu_ms"]
            return f"; CPU-cost ratio {cost(ceiling) / cost(h[key]):.2f}"

        r = statistics.median(per_round["submit"])
        add("/submit req/s ÷ /ping req/s (median of rounds)", r, "≥ 0.50", r >= 0.5,
            f"{submit['rps']:.0f} vs {ceiling['rps']:.0f} req/s; {rounds(per_round['submit'])}" + cpu_ratio("submit") +
            ("" if r >= 0.5 else f"; needs ×{0.5 / r:.2f}") + noisy, ("ceiling", "submit"))
        r = statistics.median(per_round["taskinfo"])
        add("/taskinfo req/s ÷ /ping req/s (median of rounds)", r, "≥ 0.70", r >= 0.7,
            f"{info['rps']:.0f} vs {ceiling['rps']:.0f} req/s; {rounds(per_round['taskinfo'])}" + cpu_ratio("taskinfo") +
            ("" if r >= 0.7 else f"; needs ×{0.7 / r:.2f}") + noisy, ("ceiling", "taskinfo"))
        r = submit["p99_over_p50"]
        add("/submit p99 ÷ p50 (median of rounds)", r, "≤ 3.0", r <= 3,
            f"p50 {submit['p50_ms']:.1f} ms, p99 {submit['p99_ms']:.1f} ms", ("submit",))
        add(f"Vault logins for {v['requests']:,} requests, one credential", v["logins"],
            f"≤ {v['gunicorn_workers']} (gunicorn workers)",
            v["logins"] <= v["gunicorn_workers"] and set(v["statuses"]) == {202},
            f"{v['concurrency']} concurrent clients, cold cache; statuses {v['statuses']}; entity reads "
            f"{v['entity_reads']}; all wrk gateway rows with the other credential: "
            f"{v['gateway_rows_vault_logins']} logins")
        r = e["gateway_calc_hash"]["jobs_per_s"] / e["bare_noop"]["jobs_per_s"]
        gw_e2e = e["gateway_calc_hash"]
        if gw_e2e["submit_non_2xx"] > 0.01 * gw_e2e["jobs"]:
            invalid["e2e"] = gw_e2e
        gw_cpu, bare_cpu = sum(gw_e2e["cpu_ms"].values()), sum(e["bare_noop"]["cpu_ms"].values())
        add("e2e calc_hash jobs/s ÷ bare no-op jobs/s", r, "≥ 0.90", r >= 0.9,
            f"{gw_e2e['jobs_per_s']:.0f} vs {e['bare_noop']['jobs_per_s']:.0f} jobs/s; CPU per job, all processes: "
            f"{gw_cpu:.2f} vs {bare_cpu:.2f} ms (CPU-cost ratio {bare_cpu / gw_cpu:.2f})", ("e2e",))
        comparisons = [
            {"name": "Flower async-apply ÷ /ping", "value": h["flower_apply"]["rps"] / ceiling["rps"]},
            {"name": "Flower result ÷ /ping", "value": h["flower_result"]["rps"] / ceiling["rps"]},
            {"name": "/submit ÷ Flower async-apply", "value": submit["rps"] / h["flower_apply"]["rps"]},
            {"name": "/taskinfo ÷ Flower result", "value": info["rps"] / h["flower_result"]["rps"]},
            {"name": "/submit ÷ bare send_task (no backend) msgs/s",
             "value": submit["rps"] / self.publish["no_backend"]["msgs_per_s"]},
        ]
        return out + self.auth_targets() + self.redis_targets(), comparisons

    def profiles(self, targets: list[dict[str, Any]]) -> dict[str, Any]:
        mode = self.args.profile
        # py-spy of the request path says nothing about Vault calls: the auth rows never ask for a profile
        # nor of Redis commands or pickup latency (their notes name the commands; pickup is the worker's wait)
        missed = [t["name"] for t in targets if not t["met"] and t.get("kind") not in ("auth", "redis", "pickup")]
        if mode == "never" or (mode == "auto" and not missed):
            return {}
        rows = ["submit"] + (["taskinfo"] if any("taskinfo" in name for name in missed) else [])
        done_id = self.done_id
        out = {}
        for row in rows:
            request = self._submit_request() if row == "submit" else Request(
                f"{self.s.gateway_url}/taskinfo?taskid={done_id}", auth=self._basic(USER))
            out[row] = self.profile_row(row, request)
            self.s.flush(frozenset({done_id}))
        if mode == "always" or any(name.startswith("e2e") for name in missed):
            self.s.start_worker()
            out["worker: calc_hash via gateway"] = self.profile_worker("calc_hash")
            self.s.flush(frozenset({done_id}))
            out["worker: bench.noop, bare send_task"] = self.profile_worker("noop")
            self.s.stop_worker()
            self.s.flush(frozenset({done_id}))
        return out

    def profile_worker(self, kind: str) -> dict[str, Any]:
        """py-spy on the Celery worker's main and pool processes while jobs stream in, as in the e2e rows."""
        seconds = self.args.profile_duration
        self._progress(f"py-spy on the Celery worker during {kind} jobs ({seconds}s)")
        pids = self.s.worker_pids()
        raw_dir = self._raw_dir(f"worker-{kind}")
        if kind == "calc_hash":
            request = self._submit_request()
            load = subprocess.Popen(self.wrk.argv(request, seconds + 3), env={**os.environ, **request.env()},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:  # more messages than the worker gets through while recording; the rest is flushed
            load = self._publisher("gateway", "bench.noop", 1000 * (seconds + 3), mirror=False)
        try:
            files = profile.record(pids, seconds, raw_dir)
        finally:
            if load.poll() is None:
                load.terminate()
            load.communicate(timeout=30)
        return {**profile.summarize(files, worker=True), "pids": pids, "raw": self._shown(raw_dir)}

    def _raw_dir(self, name: str) -> Path:
        raw_dir = self.args.results / f"{self.stamp}-py-spy-{name}"
        raw_dir.mkdir(parents=True, exist_ok=True)
        return raw_dir

    @staticmethod
    def _shown(path: Path) -> str:
        return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

    def profile_row(self, row: str, request: Request) -> dict[str, Any]:
        seconds = self.args.profile_duration
        self._progress(f"py-spy on the gunicorn workers during {row} ({seconds}s)")
        pids = self.s.gunicorn_workers()
        raw_dir = self._raw_dir(row)
        argv = self.wrk.argv(request, seconds + 3)
        load = subprocess.Popen(argv, env={**os.environ, **request.env()}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            files = profile.record(pids, seconds, raw_dir)
        finally:
            load.wait(timeout=seconds + 30)
        return {**profile.summarize(files), "pids": pids, "raw": self._shown(raw_dir)}


def _errors(row: dict[str, Any]) -> int:
    return row["non_2xx"] + row["socket_errors"]


def _verdicts(series: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Growth over the first and the second half of the run (from the first sample under load, so
    import-time and warm-up growth is not counted); plateau when the second half grew by at most
    max(2 MiB, 3%)."""
    if len(series) < 4:
        return {}
    first, mid, last = series[1], series[(len(series) + 1) // 2], series[-1]
    out = {}
    for name in last["rss_mib"]:
        a, b, c = (s["rss_mib"].get(name) for s in (first, mid, last))
        if None in (a, b, c) or name == "redis-server":
            continue
        late = c - b
        out[name] = {"first_half_mib": b - a, "last_half_mib": late,
                     "verdict": "plateau" if late <= max(2.0, 0.03 * b) else f"growing (+{late:.1f} MiB in 2nd half)"}
    return out


def _code() -> str:
    """The code under test, read when the run starts (the tree may change while it runs)."""
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("celery", "kombu", "flask", "gunicorn", "flower"))
    redis_version = "redis-server " + subprocess.run(["redis-server", "--version"], capture_output=True,
                                                     text=True).stdout.split()[2].removeprefix("v=")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway", "jobs", "tasks", "settings",
                            "celeryconfig.py", "gunicorn.conf.py", "wsgi.py"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    changed = f" + uncommitted changes in {len(dirty.splitlines())} gateway/jobs/tasks/settings files" if dirty else ""
    return f"git {head}{changed} at start; {versions}; {redis_version}"


def _setup(stack: Stack, args: argparse.Namespace, code: str, load_average: float) -> dict[str, str]:
    workers = stack.settings.config["workers"]
    vault = f"OpenBao {_bao_version()} (`bao server -dev`, configured by deploy/vault_bootstrap.py)"
    if args.only == "auth":
        return {
            "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
                       f"load average at start {load_average:.2f}",
            "code": code,
            "load": f"only the unauthenticated-traffic rows: {args.auth_requests} POST /submit each, "
                    f"{args.auth_concurrency} concurrent Python clients",
            "gateway": f"gunicorn wsgi:app with gunicorn.conf.py ({stack.gateway_workers} workers × "
                       f"{stack.env.get('GATEWAY_THREADS', '4')} threads, gthread)",
            "workers": "none",
            "vault": vault,
            "logging": "INFO (the product default)",
        }
    if args.only in ("redis", "pickup"):
        load = (f"only the Redis rows: {args.redis_jobs} calc_hash jobs ({args.content_bytes} B) per row, one after "
                f"another; idle workers counted over {args.idle_seconds}s" if args.only == "redis" else
                f"only the pickup-latency rows: {args.pickup_jobs} calc_hash jobs ({args.content_bytes} B) per row, "
                f"one at a time (send_task, then AsyncResult.get), a pause uniform in [0, {args.pickup_pause}] s before each")
        return {
            "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
                       f"load average at start {load_average:.2f}",
            "code": code,
            "load": load,
            "gateway": f"gunicorn wsgi:app with gunicorn.conf.py ({stack.gateway_workers} workers × "
                       f"{stack.env.get('GATEWAY_THREADS', '4')} threads, gthread)",
            "workers": f"`celery -A tasks worker -Q <queues> -n {WORKER_NODE}@%h` (as compose; concurrency "
                       f"{workers['concurrency']}, prefetch {workers['prefetch_multiplier']}) and the stock "
                       f"`celery -A bench.stock worker -Q <queues> -E -c {workers['concurrency']} -n {STOCK_NODE}@%h`, "
                       "one at a time",
            "vault": vault,
            "logging": "INFO (the product default)",
            "redis": "no persistence" if args.redis_persistence == "none" else
                     f"appendonly yes, appendfsync {args.redis_persistence}",
        }
    return {
        "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
                   f"load average at start {load_average:.2f}",
        "code": code,
        "load": f"wrk -t{args.threads} -c{args.connections}, {args.duration}s per row (+{args.warmup}s warm-up); "
                f"{ONLY_LOAD.get(args.only, '/ping, /submit, /taskinfo')}"
                f"{' (direct and through nginx)' if args.proxy == 'yes' and args.only not in ONLY_LOAD else ''} interleaved in "
                f"{args.rounds} rounds of "
                f"{max(2, args.duration // args.rounds)}s; "
                f"calc_hash content {args.content_bytes} B",
        "gateway": f"gunicorn wsgi:app with gunicorn.conf.py ({stack.gateway_workers} workers × "
                   f"{stack.env.get('GATEWAY_THREADS', '4')} threads, gthread)",
        "workers": f"`celery -A tasks worker -Q {HASH_QUEUE} -I bench.noop`, concurrency {workers['concurrency']}, "
                   f"prefetch {workers['prefetch_multiplier']}; not running during the HTTP and publish rows",
        "vault": vault,
        "proxy": (f"nginx {_nginx_version()} with deploy/nginx.py's production configuration (access log on, "
                  "buffering, keep-alive to the upstream) in front of a second gunicorn like the first but with "
                  "proxy.trusted_hops 1, as compose runs it; started for the HTTP rows only"
                  if args.proxy == "yes" and args.only != "submit" else "none"),
        "logging": "INFO (the product default), loguru to stderr (captured to a file) and to a log file, both in "
                   "the run's temp folder",
        "redis": "no persistence" if args.redis_persistence == "none" else
                 f"appendonly yes, appendfsync {args.redis_persistence}",
    }


def _nginx_version() -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    binary = shutil.which("nginx", path=search)
    if binary is None:
        return "?"
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stderr.strip()
    return out.rpartition("/")[2] or "?"


def _bao_version() -> str:
    out = subprocess.run([bao_binary(), "version"], capture_output=True, text=True, check=False).stdout.split()
    return out[1] if len(out) > 1 else "?"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join([os.environ.get("BENCH_COMMAND", "python -m bench"), shlex.join(argv)]).strip()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    # Ctrl-C (even when started from a shell that ignores it), SIGTERM and SIGHUP all unwind through the
    # same cleanup.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    code, load_average = _code(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        stack = Stack(Path(tmp), redis_persistence=args.redis_persistence)
        try:
            bench = Bench(stack, args, stamp)
            measured = bench.run()
            setup = _setup(stack, args, code, load_average)
        except KeyboardInterrupt:
            print("\nbench: interrupted; stopping everything it started", file=sys.stderr)
            return 130
        except Exception:
            print(f"bench: failed; last output of each process:\n{stack.diagnostics()}", file=sys.stderr)
            raise
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
            try:
                stack.close()
            finally:
                signal.signal(signal.SIGINT, previous)
    finished = datetime.now(UTC)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{stamp}.json"
    result = {"command": command, "started": started.isoformat(timespec="seconds"),
              "seconds": round((finished - started).total_seconds(), 1), "setup": setup,
              "result_file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path), **measured}
    text = json.dumps(result, indent=2, default=str)
    path.write_text(text)
    (args.results / "latest.json").write_text(text)
    table = report.render(result)
    (args.results / "latest.md").write_text(table + "\n")
    print(table)
    return 0
