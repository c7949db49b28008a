"""The scenarios: each starts its own stack, runs the load, strikes by real means on a timeline, lets
the clients settle and reads every acknowledged job back (faults/checker.py).

Quick ones run in CI (tests/faults/); the long ones repeat their fault many times and run on demand
(`./faults/run.sh --long`). Every scenario states its deadline: how long after the load ends every
acknowledged job must have ended.
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devsupport.processes import wait_until
from devsupport.procfs import alive
from faults import ledger
from faults.checker import Report, check
from faults.cluster import SentinelStack, await_new_master, await_rejoined, others, unfollowed
from faults.load import Load
from faults.stack import Knobs, Stack, pause, resume


@dataclass
class Run:
    """What a fault's timeline can reach: the stack, the load, and a log of what it did when."""

    stack: Stack
    load: Load
    started: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)
    fault_at: float | None = None  # time.monotonic() of the fault recovery is measured from (mark())
    problems: list[str] = field(default_factory=list)  # what the strike found wrong, reported as unexpected

    def mark(self) -> None:
        """Now is when the fault struck: the report says how long submissions failed after it."""
        self.fault_at = time.monotonic()
    # Wall-clock (began, ended) of each fault during which no mover of delayed jobs could run: Redis down,
    # no worker (faults/checker.py judges delayed jobs due then against the window's end).
    windows: list[tuple[float, float]] = field(default_factory=list)

    def at(self, seconds: float) -> None:
        """Wait until `seconds` after the load started: the fault's schedule, not a synchronisation."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f}s {what}")


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    strike: Callable[[Run], None]
    load_seconds: float
    deadline: float  # seconds after the load ends by which every acknowledged job must have ended
    quick: bool = True
    jwt_share: float = 0.0
    no_answer_allowed: bool = False
    delay_share: float = 0.0  # share of the load's submits that are delayed probes (faults/load.py)
    rate: float | None = None  # submits per second, instead of the command's --rate
    knobs: Knobs = field(default_factory=Knobs)
    stack: Callable[[Path, Knobs], Stack] = Stack  # the stack it runs on (faults/cluster.py: several machines')
    lost_allowed: bool = False  # lost jobs are the stated cost of what it tests: reported, not failed on
    # What shows the fault was felt, so a scenario whose fault missed cannot pass: (description, check).
    felt: tuple[str, Callable[[Report], bool]] = ("503s answered", lambda report: report.statuses.get("503", 0) > 0)


# --- the faults --------------------------------------------------------------------------------------------


def kill_worker(run: Run) -> None:
    """SIGKILL the worker while it runs a probe (the ledger shows one started and not done)."""
    running = wait_until(lambda: _running_probes(run.stack), 10, "a probe running", interval=0.01)
    began, old = time.time(), run.stack.procs["worker"]
    run.stack.kill_worker()
    run.note(f"worker's process group SIGKILLed while running {len(running)} probe(s) "
             f"({run.stack.worker_starts} started so far)")
    _worker_back(run, began, old)


def restart_worker(run: Run) -> None:
    """SIGTERM to the worker (a deploy, a scale-down): its warm shutdown, then a fresh worker as compose
    would start it."""
    began, old = time.time(), run.stack.procs["worker"]
    old.proc.send_signal(signal.SIGTERM)
    run.note("worker SIGTERMed (warm shutdown)")
    _worker_back(run, began, old)


def _worker_back(run: Run, began: float, old: object) -> None:
    """Wait until the supervisor's new worker answers, and note the window without a worker."""
    wait_until(lambda: run.stack.procs["worker"] is not old and run.stack.worker_exits and
               run.stack.celery().control.ping(destination=[run.stack.node()], timeout=0.5), 90, "a new worker")
    run.windows.append((began, time.time()))
    run.note(f"a new worker answers ({time.time() - began:.1f} s without one)")


def freeze_worker(run: Run) -> None:
    """SIGSTOP the worker's whole process group (a frozen VM, a swap storm) past its visibility
    timeout while it runs a probe, then SIGCONT: its leases lapsed meanwhile."""
    running = wait_until(lambda: _running_probes(run.stack), 10, "a probe running", interval=0.01)
    group = run.stack.procs["worker"].proc.pid
    os.killpg(group, signal.SIGSTOP)
    seconds = run.stack.knobs.visibility_timeout + 8
    run.note(f"worker's process group SIGSTOPped for {seconds} s while running {len(running)} probe(s)")
    time.sleep(seconds)
    os.killpg(group, signal.SIGCONT)
    run.note("worker's process group SIGCONTinued")


def _running_probes(stack: Stack) -> set[str]:
    return {task_id for task_id, runs in ledger.read(str(stack.ledger)).items()
            if runs.events[-1] == "start" and alive(runs.last_pid)}


def kill_http_worker(run: Run) -> None:
    """SIGKILL a Node worker while it runs a job (its ledger line `start` and no `done` yet)."""
    node_pids = {run.stack.procs[name].proc.pid for name in run.stack.http_workers()}

    def running() -> dict[str, int]:
        return {task_id: runs.last_pid for task_id, runs in ledger.read(str(run.stack.ledger)).items()
                if runs.events[-1] == "start" and runs.last_pid in node_pids and alive(runs.last_pid)}
    task_id, pid = next(iter(wait_until(running, 10, "a Node worker's job running", interval=0.01).items()))
    run.stack.kill_http_worker(pid)
    run.note(f"Node worker {pid} SIGKILLed while running job {task_id[:8]} "
             f"({run.stack.http_worker_starts} Node workers started so far)")


def kill_a_http_worker(run: Run) -> None:
    """SIGKILL a Node worker, in turn, whatever it is doing: running a job, or in a long poll (which the
    gateway may still answer with a job, leased to a worker that is gone, until its lease lapses)."""
    names = run.stack.http_workers()
    pid = run.stack.procs[names[len(run.events) % len(names)]].proc.pid
    held = [task_id[:8] for task_id, runs in ledger.read(str(run.stack.ledger)).items()
            if runs.events[-1] == "start" and runs.last_pid == pid]
    run.stack.kill_http_worker(pid)
    run.note(f"Node worker {pid} SIGKILLed {'running job ' + held[0] if held else 'with no job in hand'}")


def restart_redis(run: Run, down: float = 3.0) -> None:
    run.stack.kill_redis()
    run.note("redis-server SIGKILLed")
    time.sleep(down)
    run.stack.start_redis()
    run.note("redis-server started again from its AOF")


def restart_redis_until_consumed(run: Run) -> None:
    """restart_redis, then wait until the worker's consumer is connected again (kombu's reconnection
    backoff takes seconds more): the window in which no job could start, noted for the checker."""
    began = time.time()
    restart_redis(run)
    wait_until(lambda: run.stack.celery().control.ping(destination=[run.stack.node()], timeout=0.5), 60,
               "the worker connected again")
    run.windows.append((began, time.time()))
    run.note(f"the worker answers again ({time.time() - began:.1f} s after the kill)")


def outage(what: str, begin: Callable[[Stack], object], end: Callable[[Stack], object],
           seconds: float = 4.0) -> Callable[[Run], None]:
    """A fault that lasts `seconds`: `begin`, then `end`, each noted as `what` (began / ended)."""
    def strike(run: Run) -> None:
        begin(run.stack)
        run.note(f"{what}: began")
        time.sleep(seconds)
        end(run.stack)
        run.note(f"{what}: ended after {seconds:.0f} s")
    return strike


stop_redis = outage("redis-server SIGSTOP / SIGCONT", lambda stack: pause(stack.procs["redis"]),
                    lambda stack: resume(stack.procs["redis"]))
# Redis ends CLIENT PAUSE by itself; the fault is over when its time is.
client_pause = outage("CLIENT PAUSE 4000 ALL", lambda stack: stack.redis().execute_command("CLIENT", "PAUSE", 4000, "ALL"),
                      lambda stack: None)
seal_vault = outage("OpenBao sealed / unsealed", lambda stack: stack.vault.seal(), lambda stack: stack.vault.unseal())
stop_vault = outage("OpenBao SIGSTOP / SIGCONT", lambda stack: stack.vault.pause(), lambda stack: stack.vault.resume())


def fail_over(rejoin_after: float) -> Callable[[Run], None]:
    """SIGKILL the master; wait until a sentinel reports a replica promoted, and until every other replica
    (a group of two) replicates it; `rejoin_after` s after the kill, start the old master again with its
    first command (and its AOF), and wait until the sentinels have made it a replica of the new master,
    its link up. Then every gateway instance and worker node must show it followed. A step not reached in
    its time is a problem of the report, not a crash."""
    def strike(run: Run) -> None:
        stack = run.stack
        assert isinstance(stack, SentinelStack)
        old = stack.master_port()
        name = stack.group.name_of(old)
        stack.kill_redis()
        run.mark()
        killed, killed_wall = run.fault_at or 0.0, time.time()
        run.note(f"the master, redis-server port {old} ({name} at the start), SIGKILLed")
        try:
            new = await_new_master(stack, old, 30)
            run.note(f"{NEW_MASTER} {new} (the {stack.group.name_of(new)} at the start), "
                     f"{time.monotonic() - killed:.1f} s after the kill")
            for port in others(stack, old, new):
                await_rejoined(stack, port, new, max(1.0, killed + rejoin_after - time.monotonic()))
                run.note(f"{REPOINTED} {port} ({stack.group.name_of(port)} at the start) is a replica of port "
                         f"{new} (link up), {time.monotonic() - killed:.1f} s after the kill")
            time.sleep(max(0.0, killed + rejoin_after - time.monotonic()))
            stack.restart_server(name)
            run.note(f"the old master, port {old}, started again with its first command and its AOF")
            await_rejoined(stack, old, new, 30)
            run.note(f"port {old} is a replica of port {new} (link up), {time.monotonic() - killed:.1f} s after the kill")
        except TimeoutError as exc:
            run.problems.append(str(exc))
            run.note(f"failover incomplete: {exc}")
            return
        run.problems += unfollowed(stack, run.load, killed_wall, FOLLOW_BOUND)
        if stack.master_port() != new:
            run.problems.append(f"the master moved again, to {stack.master_port()}")
        run.note(f"{NEW_MASTER} {stack.master_port()} still; every gateway instance acknowledged a submit sent "
                 f"to it directly and every worker node started probes since the kill"
                 if not run.problems else f"did not follow the failover: {'; '.join(run.problems)}")
    return strike


def stall_in_turn(run: Run) -> None:
    stop_redis(run)
    time.sleep(6)
    client_pause(run)


def kill_gateway_worker(run: Run) -> None:
    """SIGKILL a gunicorn worker process; its master forks a new one (waited for, with a deadline)."""
    children = run.stack.gateway_children()
    os.kill(children[0], signal.SIGKILL)
    run.note(f"gunicorn worker {children[0]} SIGKILLed (of {len(children)})")
    wait_until(lambda: len(set(run.stack.gateway_children()) - set(children)) == 1, 30, "a new gunicorn worker")
    run.note("gunicorn forked a new worker")


def every(period: float, first: float, until: float, fault: Callable[[Run], None]) -> Callable[[Run], None]:
    def strike(run: Run) -> None:
        moment = first
        while moment < until:
            run.at(moment)
            fault(run)
            moment += period
    return strike


def once(at: float, fault: Callable[[Run], None]) -> Callable[[Run], None]:
    return every(float("inf"), at, at + 1, fault)


def both(*strikes: Callable[[Run], None]) -> Callable[[Run], None]:
    def strike(run: Run) -> None:
        for one in strikes:
            one(run)
    return strike


NEW_MASTER = "a sentinel reports the master at port"
FAILED_OVER = ("a sentinel reported a new master's address after the kill",
               lambda report: any(NEW_MASTER in event for event in report.events))
REPOINTED = "the other replica, port"
# With a replica left to acknowledge (wait_replicas + 1 replicas), WAIT is answered again once the sentinels
# re-pointed it at the new master: every submit failing after the kill ended before the old master was
# started again (the failover scenario's one replica gives ~27 s of 503s instead), and submits were
# acknowledged again.
RECOVERED = ("a sentinel reported a new master's address after the kill, the other replica re-pointed at it, "
             "and submits acknowledged again before the old master was back (every failed submit ended sooner)",
             lambda report: (FAILED_OVER[1](report) and any(REPOINTED in event for event in report.events)
                             and report.first_success_s is not None and report.last_failure_s is not None
                             and max(report.first_success_s, report.last_failure_s) < REJOIN_AFTER))
RERUN = ("a probe started again after its worker died", lambda report: report.rerun > 0)
FROZEN = ("a probe that ran through the freeze (longer than the visibility timeout from start to done)",
          lambda report: report.longest_run > Knobs().visibility_timeout)
HTTP_RERUN = ("a Node worker's job leased again after its worker was SIGKILLed", lambda report: report.rerun > 0)
RESPAWNED = ("gunicorn forked new workers", lambda report: any("new gunicorn worker" in e or "forked" in e
                                                               for e in report.events))

MULTI_QUEUES = "images,webhooks,hash"
REJOIN_AFTER = 12.0  # seconds from the master's kill until it is started again
FOLLOW_BOUND = 15.0  # seconds, once the old master rejoined, for every gateway and worker node to show it followed
FAILOVER_KNOBS = Knobs(worker_nodes=2)
# The delayed scenario's load: what the worker's two processes serve with room to spare on the shared
# 2-core machine, so a start's lateness is the move's and not a backlog's (at 8/s the backlog after the
# first fault never drained within the minute, and starts were up to 38 s late: queue wait).
DELAYED_RATE = 3.0
# Lost work reruns within visibility_timeout + 5 s; the load's backlog then drains. Deadlines hold both.
SCENARIOS = [
    Scenario("worker-kill", "the worker's whole process group SIGKILLed mid-load, restarted as compose would",
             once(6, kill_worker), load_seconds=15, deadline=60, felt=RERUN),
    Scenario("worker-freeze", "the worker's process group SIGSTOPped past its visibility timeout mid-job, then resumed",
             once(5, freeze_worker), load_seconds=25, deadline=60, felt=FROZEN),
    Scenario("redis-restart", "redis-server SIGKILLed mid-load, started again from its AOF (appendfsync always) 3 s later",
             once(6, restart_redis), load_seconds=15, deadline=90),
    Scenario("redis-stall", "redis-server SIGSTOPped for 4 s, then CLIENT PAUSE ALL for 4 s",
             both(once(4, stop_redis), once(11, client_pause)), load_seconds=16, deadline=60),
    Scenario("vault-down", "OpenBao sealed for 4 s, then SIGSTOPped for 4 s; half the submits need a login",
             both(once(4, seal_vault), once(11, stop_vault)), load_seconds=16, deadline=60, jwt_share=0.5),
    Scenario("gateway-kill", "a gunicorn worker SIGKILLed twice mid-load (clients see resets and repeat)",
             every(5, 4, 10, kill_gateway_worker), load_seconds=12, deadline=60, no_answer_allowed=True,
             felt=RESPAWNED),
    # A worker on several queues, the probes' last of them, so a sibling channel takes them
    # (tasks/delivery/transport.py, point 5).
    Scenario("worker-kill-multi", "worker-kill, the worker consuming images,webhooks,hash",
             once(6, kill_worker), load_seconds=15, deadline=60, felt=RERUN, knobs=Knobs(queues=MULTI_QUEUES)),
    Scenario("redis-restart-multi", "redis-restart, the worker consuming images,webhooks,hash",
             once(6, restart_redis), load_seconds=15, deadline=90, knobs=Knobs(queues=MULTI_QUEUES)),
    # Half the load is calc_hash_http, served by two Node workers over the HTTP worker API (issue 22).
    Scenario("http-worker-kill", "a reference Node worker SIGKILLed mid-job under load, restarted as compose would",
             once(6, kill_http_worker), load_seconds=15, deadline=60, felt=HTTP_RERUN, knobs=Knobs(http_workers=2)),
    # On demand: the same faults, many times over, for minutes.
    Scenario("worker-kill-long", "the worker SIGKILLed every 12 s for 2 minutes",
             every(12, 6, 120, kill_worker), load_seconds=125, deadline=120, quick=False, felt=RERUN),
    Scenario("redis-restart-long", "redis-server restarted from its AOF every 20 s for 2 minutes",
             every(20, 8, 120, restart_redis), load_seconds=125, deadline=150, quick=False),
    Scenario("http-worker-kill-long", "a Node worker SIGKILLed every 6 s for 2 minutes, mid-job or mid-poll",
             every(6, 5, 120, kill_a_http_worker), load_seconds=125, deadline=90, quick=False, felt=HTTP_RERUN,
             knobs=Knobs(http_workers=2)),
    # Delayed jobs (jobs/delayed.py): most of the load is probes with delay_seconds 1-8 s, while the worker
    # is SIGKILLed, SIGTERMed and Redis restarted from its AOF; each must start once, not early, on time.
    # The faults are 30 s apart: the backlog of one drains before the next, and some jobs are due far
    # from any fault (the checker's on-time figures).
    Scenario("delayed", "60 % delayed probes (1-8 s) under load; worker SIGKILLed, SIGTERMed, Redis restarted "
             "from its AOF, in turn, every 30 s",
             both(once(10, kill_worker), once(40, restart_redis_until_consumed), once(70, restart_worker),
                  once(100, restart_redis_until_consumed), once(130, kill_worker)),
             load_seconds=140, deadline=120, quick=False, delay_share=0.6, felt=RERUN, rate=DELAYED_RATE),
    Scenario("redis-stall-long", "SIGSTOP / CLIENT PAUSE of redis-server in turn every 10 s for 2 minutes",
             every(20, 5, 120, stall_in_turn),
             load_seconds=125, deadline=90, quick=False),
    # Several machines on one (faults/cluster.py): the master SIGKILLed, Sentinel promotes the replica, the
    # old master comes back as a replica. With WAIT acknowledgement every 202 is on the replica too: none
    # may be lost. Without, a 202 answered just before the kill may be (replication is asynchronous): the
    # stated cost, counted and shown but not failed on; a duplicated, stuck or misreported job still fails.
    Scenario("failover", "Sentinel failover under load, queue.wait_replicas 1: master SIGKILLed, replica "
             f"promoted, old master back as a replica {REJOIN_AFTER:.0f} s after the kill; 3 gateways behind nginx",
             once(8, fail_over(REJOIN_AFTER)), load_seconds=40, deadline=60, quick=False, felt=FAILED_OVER,
             knobs=FAILOVER_KNOBS, stack=lambda folder, knobs: SentinelStack(folder, knobs, wait_replicas=1)),
    # The advised configuration: wait_replicas + 1 replicas, so that a failover leaves one to acknowledge.
    Scenario("failover-two-replicas", "failover (queue.wait_replicas 1) with two replicas: the one not promoted "
             "acknowledges once re-pointed at the new master, so submits recover before the old master is back",
             once(8, fail_over(REJOIN_AFTER)), load_seconds=40, deadline=60, quick=False, felt=RECOVERED,
             knobs=FAILOVER_KNOBS,
             stack=lambda folder, knobs: SentinelStack(folder, knobs, wait_replicas=1, replicas=2)),
    Scenario("failover-nowait", "failover with queue.wait_replicas 0 (the default): acknowledged jobs lost "
             "in the kill are the stated cost of asynchronous replication, reported, not failed on",
             once(8, fail_over(REJOIN_AFTER)), load_seconds=40, deadline=60, quick=False, felt=FAILED_OVER,
             knobs=FAILOVER_KNOBS, lost_allowed=True,
             stack=lambda folder, knobs: SentinelStack(folder, knobs, wait_replicas=0)),
]


def by_name(names: list[str] | None = None, quick: bool | None = None) -> list[Scenario]:
    chosen = [s for s in SCENARIOS if (names is None or s.name in names) and (quick is None or s.quick == quick)]
    unknown = set(names or ()) - {s.name for s in SCENARIOS}
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return chosen


def run_scenario(scenario: Scenario, workdir: Path | None = None, clients: int = 16, rate: float = 8.0) -> Report:
    """Start a stack, run the load with the fault on its timeline, check, stop everything."""
    folder = Path(tempfile.mkdtemp(prefix=f"faults-{scenario.name}-", dir=workdir))
    stack = scenario.stack(folder, scenario.knobs)
    try:
        stack.start()
        load = Load(stack, clients=clients, rate=scenario.rate or rate, jwt_share=scenario.jwt_share,
                    delay_share=scenario.delay_share)
        stop_supervising = threading.Event()
        supervisor = threading.Thread(target=_supervise, args=(stack, stop_supervising), daemon=True)
        supervisor.start()
        load.start()
        run = Run(stack, load)
        scenario.strike(run)
        run.at(scenario.load_seconds)
        load.stop()
        run.note(f"load stopped ({len(load.submissions)} submits)")
        report = check(scenario.name, stack, load, time.monotonic() + scenario.deadline,
                       no_answer_allowed=scenario.no_answer_allowed, lost_allowed=scenario.lost_allowed,
                       fault_at=run.fault_at, windows=run.windows)
        stop_supervising.set()
        supervisor.join(5)
        what, felt = scenario.felt
        report.events = run.events + [f"worker started {stack.worker_starts}x, exits {stack.worker_exits}",
                                      *([f"Node workers started {stack.http_worker_starts}x, exits "
                                         f"{stack.http_worker_exits}"] if stack.knobs.http_workers else []),
                                      f"run folder {folder}"]
        report.unexpected += run.problems
        if not felt(report):
            report.unexpected.append(f"the fault was not felt (expected: {what})")
        return report
    finally:
        stack.close()


def _supervise(stack: Stack, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        try:
            stack.supervise()
        except Exception:  # noqa: BLE001 - a restart that fails now is tried again next round
            pass
