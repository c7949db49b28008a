"""The worker's heartbeat file and its container healthcheck:
`python -m tasks.delivery.heartbeat <node name> [--max-age SECONDS]`.

The consumer's event loop touches the file every `TICK` seconds while its broker connection is up
(tasks/delivery/watchdog.py). Exit 0 when it did within `--max-age` seconds: a worker that no longer
consumes — lost its broker, wedged — turns unhealthy within that time, without a broadcast to every
worker (what `celery inspect ping` costs). The worker's own watchdog makes it exit soon after, so
`restart:` brings up a fresh one.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

TICK = 5.0  # seconds between the event loop's stamps, and between the keeper's refreshes


def heartbeat_path(node: str) -> Path:
    """The file a worker's event loop touches while it consumes."""
    return Path(tempfile.gettempdir()) / f"celery-worker-{node}.alive"


def touch(node: str) -> None:
    heartbeat_path(node).touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.delivery.heartbeat")
    parser.add_argument("node", help="the worker's node name, as given to -n (e.g. hash@$HOSTNAME)")
    parser.add_argument("--max-age", type=float, default=6 * TICK, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        age = time.time() - heartbeat_path(args.node).stat().st_mtime
    except OSError:
        print(f"{args.node}: no heartbeat yet")
        return 1
    print(f"{args.node}: heartbeat {age:.0f}s ago (healthy within {args.max_age:.0f}s)")
    return 0 if age <= args.max_age else 1


if __name__ == "__main__":
    sys.exit(main())
