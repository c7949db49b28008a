"""Bare Celery publishing in one process: `python -m bench.publish ...` prints one JSON line.

Run as its own process (settings from GATEWAY_CONFIG/GATEWAY_SECRETS like every service) so its CPU
time, from getrusage, is the publisher's alone. `--role gateway` uses the gateway's celeryconfig (no
result backend); `--role worker` the workers' one (Redis result backend configured, so every publish
also subscribes to the task's result channel). `--mirror-gateway` sends exactly the options the
gateway's dispatcher sends (task id, queue, expires, limits, headers, argsrepr); without it, the
plainest call: kwargs and queue.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta

from celery import Celery

import celeryconfig
from bench.payload import upload as make_upload
from gateway.submission import capture
from jobs.headers import CLIENT_HEADER, JOB_TYPE_HEADER, SUBMITTED_HEADER
from settings import load_settings_or_exit
from tasks.delivery import transport as worker_transport


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish")
    parser.add_argument("--role", choices=("gateway", "worker"), required=True)
    parser.add_argument("--task", default="jobs.calc_hash")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--content-bytes", type=int, default=1024)
    parser.add_argument("--mirror-gateway", action="store_true")
    args = parser.parse_args()

    settings = load_settings_or_exit()
    transport = capture.Transport if args.role == "gateway" else worker_transport.Transport
    app = Celery("bench-publish", config_source=celeryconfig.build(settings, role=args.role, transport=transport),
                 set_as_current=False)
    job = settings.config["jobs"]["calc_hash"]
    upload = make_upload(args.content_bytes)

    def send() -> None:
        if not args.mirror_gateway:
            app.send_task(args.task, kwargs={"upload": upload}, queue=job["queue"])
            return
        created = datetime.now(UTC)
        app.send_task(
            args.task, kwargs={"upload": upload}, task_id=str(uuid.uuid4()), queue=job["queue"],
            expires=created + timedelta(seconds=job["ttl"]), time_limit=job["time_limit"],
            soft_time_limit=job["soft_time_limit"],
            headers={CLIENT_HEADER: "bench", JOB_TYPE_HEADER: "calc_hash", SUBMITTED_HEADER: created.timestamp()},
            argsrepr="()", kwargsrepr=f"{{'upload': <calc_hash upload, {len(upload)} fields>}}", retry=False)

    send()  # connect and declare once, outside the measurement
    usage0, t0, first = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), time.time()
    for _ in range(args.count):
        send()
    t1, usage1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    print(json.dumps({"count": args.count, "seconds": t1 - t0, "cpu_seconds": cpu, "first_send": first,
                      "warmup_messages": 1}), flush=True)
    app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
