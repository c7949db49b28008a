"""The worker's container healthcheck: `python -m tasks.alive <node name> [--max-age SECONDS]`.

Exit 0 when the worker's event loop touched its heartbeat file (tasks/leases.py) within `--max-age`
seconds, which it does only while its consumer is connected: a worker that no longer consumes — lost
its broker, wedged — turns unhealthy within that time, without a broadcast to every worker (what
`celery inspect ping` costs). The worker's own watchdog makes it exit soon after, so `restart:`
brings up a fresh one.
"""
from __future__ import annotations

import argparse
import sys
import time

from tasks.leases import STALL_LIMIT, TICK, heartbeat_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.alive")
    parser.add_argument("node", help="the worker's node name, as given to -n (e.g. hash@$HOSTNAME)")
    parser.add_argument("--max-age", type=float, default=6 * TICK, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        age = time.time() - heartbeat_path(args.node).stat().st_mtime
    except OSError:
        print(f"{args.node}: no heartbeat yet")
        return 1
    print(f"{args.node}: heartbeat {age:.0f}s ago (stall limit {STALL_LIMIT:.0f}s)")
    return 0 if age <= args.max_age else 1


if __name__ == "__main__":
    sys.exit(main())
