"""The verdict on one scenario: every acknowledged job read back until it ends, then judged.

- **lost**: an acknowledged uuid the gateway no longer knows (`404`), or a job that ran nowhere;
- **stuck**: not `done`/`error` by the deadline;
- **duplicated**: one `Idempotency-Key` named two uuids in its `2xx` answers, a task record no acknowledged submit names
  (a `503`'d submit that was queued under another uuid), or a probe started again after its result
  was stored, or stored twice (faults/ledger.py; the Node workers' jobs are in the same ledger, their
  `stored` once the gateway accepted their finish). Work redone because its worker died between the
  work and storing its result is allowed (every job type here is a pure function of its payload) and
  counted apart;
- **misreported**: a terminal state that is not the truth: `done` with a wrong result or without the
  work having run, an `error` the job did not earn (code 6 only after `workers.max_deliveries` starts
  whose worker died; no other code is earned here: nobody cancels, nothing expires, every payload is
  valid), a `404` for an acknowledged uuid during the run, or an end that changed when read again;
- **recovery** (a scenario that marks the moment of its fault): how long after it the last submit failed
  (`503` or no answer) and when the first submit sent after it was acknowledged;
- **answers**: every `503` at the client within 2 s; no `5xx` but `503`; no request without an answer
  unless the scenario kills gateway processes; no client error (a submit the gateway refused);
- **early** / **late** (delayed probes): its first start (the ledger) before its `scheduled_for`, or more
  than ON_TIME seconds after it; for one due during a fault window (Redis down, no worker consuming:
  the scenario's `windows`) or in the recovery after one, later than both that and the recovery after
  that window ended:
  `workers.visibility_timeout` + 5 s, the bound within which a job a dead worker had taken is back on
  its queue (docs/guarantees.md), which also covers the backlog the window left. A delayed probe without
  `scheduled_for` in its TaskInfo is misreported.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

import celeryconfig
from faults import ledger
from faults.load import NO_ANSWER, Load, Submission
from faults.stack import HTTP_TYPE, Stack
from jobs import delayed
from jobs.keys import RECORD_PREFIX

TERMINAL = ("done", "error")
MAX_503_SECONDS = 2.0
WORKER_LOST = 6
LEDGERED = ("probe", HTTP_TYPE)  # job types whose every start, work done and stored result the ledger has
# A delayed job is moved onto its queue within MOVE_EVERY (+ the clock margin, 0 on one host) of its time;
# under the load it then waits for one of the worker's two processes: ON_TIME holds both.
ON_TIME = delayed.MOVE_EVERY + 2.0
RESTORE_EVERY = celeryconfig.RESTORE_INTERVAL  # seconds between the workers' sweeps of lapsed deliveries
EARLY_SLACK = 0.002  # the ledger's stamps have milliseconds
Window = tuple[float, float]  # wall-clock seconds: no mover could run (Redis down, no worker)


@dataclass
class Report:
    scenario: str
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    misreported: list[str] = field(default_factory=list)
    gave_up: int = 0  # honest code-6 ends
    rerun: int = 0  # probes started more than once (their worker died under them)
    redone: int = 0  # probes whose work completed twice because the first result was never stored
    # "Outcome unknown" 503s (they carry the uuid the job has if it was queued: a record of one that no
    # 2xx named is a duplicate, found by the record scan).
    unknown_outcomes: int = 0
    unknown_queued: int = 0  # of those, the job was queued after all (its key's repeat found it)
    longest_run: float = 0.0  # seconds from a probe's first start to its completion, the longest
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    worst_503: float | None = None
    slow_503: int = 0
    worst_answer: float = 0.0
    no_answer: int = 0
    no_answer_allowed: bool = False
    lost_allowed: bool = False  # a stated cost (asynchronous replication): counted and shown, not a failure
    lost_ids: set[str] = field(default_factory=set)
    # From the fault (Run.mark) to the end of the last failed submit, and to the first acknowledgement of a
    # submit sent after it: how long submissions failed.
    last_failure_s: float | None = None
    first_success_s: float | None = None
    unexpected: list[str] = field(default_factory=list)
    settled_seconds: float = 0.0  # from the end of the load until every acknowledged job had ended
    events: list[str] = field(default_factory=list)
    delayed: int = 0  # acknowledged delayed probes
    early: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    latest_on_time: float | None = None  # seconds from scheduled_for to first start, the most, no fault near
    on_time: list[float] = field(default_factory=list)  # the same, each (no fault near)
    latest_after_fault: float | None = None  # the same, for those due during a fault or the recovery after one

    @property
    def failures(self) -> list[str]:
        lost = [] if self.lost_allowed else self.lost
        problems = [f"{name}: {len(items)} ({', '.join(items[:3])})"
                    for name, items in (("lost", lost), ("stuck", self.stuck), ("duplicated", self.duplicated),
                                        ("misreported", self.misreported), ("early", self.early),
                                        ("late", self.late), ("unexpected", self.unexpected))
                    if items]
        if self.slow_503:
            problems.append(f"{self.slow_503} answers 503 after more than {MAX_503_SECONDS} s (worst {self.worst_503:.2f} s)")
        if self.no_answer and not self.no_answer_allowed:
            problems.append(f"{self.no_answer} requests without an answer")
        if self.acknowledged == 0:
            problems.append("no job was acknowledged: the load did not run")
        return problems

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "acknowledged": self.acknowledged, "lost": len(self.lost),
                "stuck": len(self.stuck), "duplicated": len(self.duplicated), "misreported": len(self.misreported),
                "gave_up_code_6": self.gave_up, "rerun": self.rerun, "work_redone": self.redone,
                "unknown_outcome_503s": self.unknown_outcomes, "of_which_queued": self.unknown_queued,
                "longest_probe_s": round(self.longest_run, 1), "requests": self.requests, "statuses": self.statuses,
                "503s": self.statuses.get("503", 0),
                "worst_503_s": None if self.worst_503 is None else round(self.worst_503, 3),
                "worst_answer_s": round(self.worst_answer, 3), "no_answer": self.no_answer,
                "settled_s": round(self.settled_seconds, 1),
                "last_failed_submit_s": _rounded(self.last_failure_s), "first_success_s": _rounded(self.first_success_s),
                "lost_allowed": self.lost_allowed, "ok": self.ok, "failures": self.failures,
                "events": self.events, "delayed": self.delayed, "early": len(self.early), "late": len(self.late),
                "latest_on_time_s": _rounded(self.latest_on_time), "latest_after_fault_s": _rounded(self.latest_after_fault),
                "on_time_count": len(self.on_time), "on_time_p50_s": _rounded(_quantile(self.on_time, 0.5)),
                "on_time_p95_s": _rounded(_quantile(self.on_time, 0.95))}


def _quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def check(name: str, stack: Stack, load: Load, deadline: float, no_answer_allowed: bool = False,
          lost_allowed: bool = False, fault_at: float | None = None, windows: Sequence[Window] = ()) -> Report:
    """Settle the load's unacknowledged submits, then wait (until `deadline`, a monotonic time) for every
    acknowledged job to end, and judge. `fault_at`: the moment (monotonic) of the fault recovery is
    measured from. `windows`: when no mover of delayed jobs could run (see the module's docstring)."""
    report = Report(name, no_answer_allowed=no_answer_allowed, lost_allowed=lost_allowed)
    load_ended = time.monotonic()
    load.settle(deadline)
    subs = load.acknowledged()
    report.acknowledged = len(subs)
    report.unexpected += [f"{sub.key[:8]} refused {sub.refused}" for sub in load.submissions if sub.refused]
    report.unexpected += [f"{sub.key[:8]} never acknowledged" for sub in load.unacknowledged()]
    ends = _await_ends(stack, subs, deadline)
    report.settled_seconds = time.monotonic() - load_ended
    again = _read_all(stack, [sub.uuid for sub in subs if ends.get(sub.uuid, {}).get("status") in TERMINAL])
    runs = ledger.read(str(stack.ledger))
    report.longest_run = max((one.seconds for one in runs.values()), default=0.0)
    max_deliveries = stack.settings.config["workers"].get("max_deliveries", 2)
    for sub in subs:
        _judge(report, sub, ends.get(sub.uuid), again.get(sub.uuid), runs.get(sub.uuid, ledger.Runs()),
               max_deliveries)
        if sub.delay is not None:
            _judge_time(report, sub, ends.get(sub.uuid), runs.get(sub.uuid, ledger.Runs()), windows,
                        stack.knobs.visibility_timeout + RESTORE_EVERY)
    named = {sub.uuid for sub in subs}
    report.duplicated += [f"{task_id[:8]} recorded, acknowledged to nobody" for task_id in _records(stack) - named]
    _answers(report, load)
    if fault_at is not None:
        _recovery(report, load, fault_at)
    return report


def _judge(report: Report, sub: Submission, end: dict[str, Any] | None, again: dict[str, Any] | None,
           runs: ledger.Runs, max_deliveries: int) -> None:
    task = sub.uuid[:8]
    if len(sub.seen) > 1:
        report.duplicated.append(f"{task} key named {len(sub.seen)} uuids")
    report.unknown_outcomes += len(sub.unknown)
    report.unknown_queued += len(sub.unknown & sub.seen)
    if runs.starts > 1:
        report.rerun += 1
    if runs.stored > 1 or runs.started_after_stored:
        report.duplicated.append(f"{task} ran after it finished ({' '.join(runs.events)})")
    elif runs.done > 1:
        report.redone += 1
    if end is None or end.get("_status") == 404:
        report.lost.append(f"{task} 404")
        report.lost_ids.add(sub.uuid)
        return
    if end.get("status") not in TERMINAL:
        report.stuck.append(f"{task} {end.get('status')} {end.get('message', '')[:60]}")
        return
    if again is None or (again.get("status"), again.get("code")) != (end["status"], end.get("code")):
        report.misreported.append(f"{task} ended {end['status']}, then read {again and again.get('status')}")
    if end["status"] == "done":
        if not _result_is_true(sub, end.get("result") or {}) or (sub.job_type in LEDGERED and runs.done == 0):
            report.misreported.append(f"{task} done with a result that is not its work")
        return
    if end.get("code") == WORKER_LOST and (sub.job_type not in LEDGERED or runs.starts >= max_deliveries):
        report.gave_up += 1
        return
    report.misreported.append(f"{task} error {end.get('code')} {end.get('message', '')[:60]} (started {runs.starts}x)")


def _judge_time(report: Report, sub: Submission, end: dict[str, Any] | None, runs: ledger.Runs,
                windows: Sequence[Window], recovery: float) -> None:
    """A delayed probe: started once its time came, and on time (see the module's docstring)."""
    report.delayed += 1
    task = (sub.uuid or "")[:8]
    if end is None or end.get("status") not in TERMINAL or runs.first_start is None:
        return  # lost, stuck or never run: judged as such already
    if not end.get("scheduled_for"):
        report.misreported.append(f"{task} delayed, but its TaskInfo has no scheduled_for")
        return
    due = datetime.fromisoformat(end["scheduled_for"]).timestamp()
    after = runs.first_start - due
    if after < -EARLY_SLACK:
        report.early.append(f"{task} started {-after:.3f} s before its time")
        return
    near = [ended for began, ended in windows if began <= due + ON_TIME and ended + recovery >= due]
    if not near:
        report.latest_on_time = max(after, report.latest_on_time or 0.0)
        report.on_time.append(after)
        if after > ON_TIME:
            report.late.append(f"{task} started {after:.2f} s after its time")
        return
    report.latest_after_fault = max(after, report.latest_after_fault or 0.0)
    if runs.first_start > max(due + ON_TIME, max(near) + recovery):
        report.late.append(f"{task} started {runs.first_start - max(near):.2f} s after the fault near its time ended "
                           f"({after:.2f} s after its time)")


def _result_is_true(sub: Submission, result: dict[str, Any]) -> bool:
    expected = sub.expected()
    if sub.job_type == "probe":
        return result == expected
    return (result.get("digests") or {}).get("sha256") == expected["sha256"]


def _await_ends(stack: Stack, subs: list[Submission], deadline: float) -> dict[str, dict[str, Any]]:
    ends: dict[str, dict[str, Any]] = {}
    waiting = [sub.uuid for sub in subs]
    while waiting:
        ends.update(_read_all(stack, waiting))
        waiting = [task_id for task_id in waiting if ends.get(task_id, {}).get("status") not in TERMINAL
                   and ends.get(task_id, {}).get("_status") != 404]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # polling interval of the read-back, bounded by the deadline above
    return ends


def _read_all(stack: Stack, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with requests.Session() as session:
        session.auth = stack.admin()
        for task_id in task_ids:
            try:
                response = session.get(stack.url + "/taskinfo", params={"taskid": task_id}, timeout=10)
            except requests.RequestException:
                continue
            if response.status_code == 404:
                found[task_id] = {"_status": 404}
            elif response.status_code == 200:
                found[task_id] = response.json()
    return found


def _records(stack: Stack) -> set[str]:
    client = stack.redis()
    return {key[len(RECORD_PREFIX):] for key in client.scan_iter(match=RECORD_PREFIX + "*", count=1000)}


def _answers(report: Report, load: Load) -> None:
    answers = list(load.answers)
    report.requests = len(answers)
    report.statuses = dict(sorted(Counter(str(answer.status) for answer in answers).items()))
    unavailable = [answer.seconds for answer in answers if answer.status == 503]
    report.worst_503 = max(unavailable, default=None)
    report.slow_503 = sum(1 for seconds in unavailable if seconds > MAX_503_SECONDS)
    report.worst_answer = max((answer.seconds for answer in answers), default=0.0)
    report.no_answer = sum(1 for answer in answers if answer.status == NO_ANSWER)
    report.unexpected += [f"{answer.route} {answer.status} {answer.message[:60]}" for answer in answers
                          if answer.status >= 500 and answer.status != 503]
    # A lost job read back 404 is counted once, as lost.
    report.misreported += [f"{answer.route} 404 for an acknowledged job" for answer in answers
                           if answer.route == "taskinfo" and answer.status == 404 and answer.task not in report.lost_ids]


def _recovery(report: Report, load: Load, fault_at: float) -> None:
    submits = [answer for answer in load.answers if answer.route == "submit" and answer.at + answer.seconds >= fault_at]
    failed = [answer.at + answer.seconds - fault_at for answer in submits if answer.status in (NO_ANSWER, 503)]
    acknowledged = [answer.at + answer.seconds - fault_at for answer in submits
                    if answer.at >= fault_at and answer.status in (200, 202)]
    report.last_failure_s = max(failed, default=None)
    report.first_success_s = min(acknowledged, default=None)
