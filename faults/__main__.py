"""`python -m faults` (or `./faults/run.sh`): run fault scenarios and print their report.

    ./faults/run.sh                 # the quick scenarios (what CI runs, as tests/faults/)
    ./faults/run.sh --long          # the long ones (minutes each)
    ./faults/run.sh --all --json report.json
    ./faults/run.sh --only worker-kill,redis-restart
    ./faults/run.sh --only failover,failover-two-replicas,failover-nowait   # Sentinel failover, WAIT on and off

Exit status 0 only when every scenario's report is clean.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from faults.scenarios import SCENARIOS, by_name, run_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./faults/run.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--long", action="store_true", help="the long scenarios only")
    which.add_argument("--all", action="store_true", help="quick and long scenarios")
    which.add_argument("--only", help="comma-separated scenario names")
    which.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--rate", type=float, default=8.0, help="submits per second, all clients (default 8)")
    parser.add_argument("--json", help="also write the reports to this file")
    args = parser.parse_args(argv)
    if args.list:
        for scenario in SCENARIOS:
            kind = "quick" if scenario.quick else "long"
            print(f"{scenario.name:22} {kind:5} load {scenario.load_seconds:>4.0f} s, deadline "
                  f"{scenario.deadline:>3.0f} s  {scenario.summary}")
        return 0
    chosen = (by_name(args.only.split(",")) if args.only else SCENARIOS if args.all
              else by_name(quick=not args.long))
    print(f"faults: {len(chosen)} scenario(s), {args.clients} clients, {args.rate} submits/s "
          f"(command: ./faults/run.sh {' '.join(argv if argv is not None else sys.argv[1:])})", flush=True)
    reports = []
    for scenario in chosen:
        began = time.monotonic()
        report = run_scenario(scenario, clients=args.clients, rate=args.rate)
        reports.append(report.summary() | {"scenario_seconds": round(time.monotonic() - began, 1)})
        print_report(reports[-1])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(reports, handle, indent=2)
    print_table(reports)
    return 0 if all(report["ok"] for report in reports) else 1


def print_report(report: dict) -> None:
    print(f"\n== {report['scenario']}: {'ok' if report['ok'] else 'FAILED'} ({report['scenario_seconds']} s)")
    for event in report["events"]:
        print(f"   {event}")
    if report["last_failed_submit_s"] is not None or report["first_success_s"] is not None:
        print(f"   after the fault: last failed submit ended at {_seconds(report['last_failed_submit_s'], 1)}, first "
              f"submit sent after it acknowledged at {_seconds(report['first_success_s'], 1)}")
    if report["lost_allowed"] and report["lost"]:
        print(f"   {report['lost']} acknowledged job(s) lost: the stated cost of this scenario, not a failure")
    print(f"   answers: {report['statuses']}  worst 503 {report['worst_503_s']} s, worst answer "
          f"{report['worst_answer_s']} s, no answer {report['no_answer']}; 'outcome unknown' 503s "
          f"{report['unknown_outcome_503s']} (queued after all: {report['of_which_queued']})")
    for failure in report["failures"]:
        print(f"   FAIL {failure}")
    sys.stdout.flush()


def print_table(reports: list[dict]) -> None:
    print("\n| scenario | acknowledged | lost | stuck | duplicated | misreported | rerun | work redone | code 6 | 503s | worst 503 | "
          "all ended after load | submits fail until | first 2xx after fault |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in reports:
        worst = "–" if r["worst_503_s"] is None else f"{r['worst_503_s']:.2f} s"
        lost = f"{r['lost']} (allowed)" if r["lost_allowed"] and r["lost"] else r["lost"]
        print(f"| {r['scenario']} | {r['acknowledged']} | {lost} | {r['stuck']} | {r['duplicated']} | "
              f"{r['misreported']} | {r['rerun']} | {r['work_redone']} | {r['gave_up_code_6']} | {r['503s']} | "
              f"{worst} | {r['settled_s']} s | {_seconds(r['last_failed_submit_s'], 1)} | {_seconds(r['first_success_s'], 1)} |")
    timed = [r for r in reports if r["delayed"]]
    if timed:
        print("\n| scenario | delayed jobs | early | late | duplicated | lost | start after its time, no fault near (jobs): "
              "p50 / p95 / max | the same, due during a fault or its recovery: max |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in timed:
            print(f"| {r['scenario']} | {r['delayed']} | {r['early']} | {r['late']} | {r['duplicated']} | {r['lost']} | "
                  f"({r['on_time_count']}) {_seconds(r['on_time_p50_s'])} / {_seconds(r['on_time_p95_s'])} / "
                  f"{_seconds(r['latest_on_time_s'])} | "
                  f"{_seconds(r['latest_after_fault_s'])} |")


def _seconds(value: float | None, digits: int = 2) -> str:
    """A figure in seconds; – when there is none (a scenario that marks no fault, nothing after it)."""
    return "–" if value is None else f"{value:.{digits}f} s"


if __name__ == "__main__":
    sys.exit(main())
