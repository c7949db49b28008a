"""The third-party internals this project overrides or calls, each with the code of ours that relies on
it, and a digest of the source it was read from (pins.json).

    python -m tests.contract.pins            # show what differs from the pins
    python -m tests.contract.pins --update   # after re-reading each named override: record the new pins

Upgrading kombu or Celery: run `./scripts/test.sh tests/contract`; each failure names the internal that
changed and the override to re-read against the new source (docs/architecture.md).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PINS_FILE = Path(__file__).with_name("pins.json")


@dataclass(frozen=True)
class Pin:
    target: str  # "module:Qualified.name" of the third-party function
    ours: str  # the code of ours written against it: what to re-read when it changes


PINS = [
    # The workers' transport (tasks/delivery/transport.py).
    Pin("kombu.transport.redis:QoS.append", "tasks/delivery/transport.py QoS.append (retried across a Redis restart)"),
    Pin("kombu.transport.redis:QoS.restore_unacked", "tasks/delivery/transport.py QoS.restore_unacked (keeps running jobs)"),
    Pin("kombu.transport.redis:QoS.restore_by_tag", "tasks/delivery/transport.py QoS.restore_unacked calls it"),
    Pin("kombu.transport.redis:QoS.restore_visible", "tasks/delivery/transport.py QoS.restore_visible (one read first; "
        "uses unacked_index_key, visibility_timeout)"),
    Pin("kombu.transport.redis:Transport.__init__", "celeryconfig.py TAKE_WAIT: polling_interval sets brpop_timeout"),
    Pin("kombu.transport.redis:QoS.reject", "tasks/delivery/transport.py QoS.reject (releases the lease on requeue)"),
    Pin("kombu.transport.virtual.base:QoS.__init__", "tasks/delivery/transport.py reads QoS._delivered"),
    Pin("kombu.transport.redis:Channel._brpop_start", "tasks/delivery/transport.py Channel._brpop_start re-implements it (BLMOVE)"),
    Pin("kombu.transport.redis:Channel._brpop_read", "tasks/delivery/transport.py Channel._brpop_read re-implements it"),
    Pin("kombu.transport.redis:Channel._flush_brpop_reauth", "tasks/delivery/transport.py Channel._brpop_read calls it"),
    Pin("kombu.transport.redis:Channel._connparams", "tasks/delivery/transport.py Channel._connparams (closed channel)"),
    Pin("kombu.transport.redis:Channel.__init__", "tasks/delivery/transport.py uses _queue_cycle, _in_poll, active_queues"),
    Pin("kombu.transport.redis:MultiChannelPoller.on_poll_start", "tasks/delivery/transport.py: when _brpop_start runs"),
    Pin("kombu.transport.redis:MultiChannelPoller.handle_event", "tasks/delivery/transport.py: when _brpop_read runs"),
    Pin("kombu.transport.virtual.base:Transport._deliver", "tasks/delivery/transport.py calls connection._deliver"),
    Pin("kombu.transport.redis:Channel.basic_consume", "tasks/delivery/transport.py Channel.basic_consume (shares queues); "
        "queues consumed with BRPOP, fanout with LISTEN"),
    Pin("kombu.transport.redis:Channel._basic_cancel", "tasks/delivery/transport.py Channel._basic_cancel (drops a sibling)"),
    Pin("kombu.transport.virtual.base:Channel.basic_consume", "tasks/delivery/transport.py: the queue's callback a sibling "
        "delivers to; _active_queues, _tag_to_queue"),
    Pin("kombu.transport.redis:Channel.close", "tasks/delivery/transport.py Channel.close (siblings first; reads a move in flight)"),
    Pin("kombu.transport.virtual.base:Channel.close", "tasks/delivery/transport.py Channel.close: a sibling's _qos is None"),
    Pin("kombu.transport.virtual.base:Channel.qos", "tasks/delivery/transport.py _sibling sets _qos to a SiblingQoS"),
    Pin("kombu.transport.virtual.base:QoS.can_consume", "tasks/delivery/transport.py QoS.can_consume / has_room"),
    Pin("kombu.transport.redis:MultiChannelPoller.on_readable", "tasks/delivery/transport.py QoS.can_consume: a move in "
        "flight is read, not paused"),
    Pin("kombu.transport.redis:MultiChannelPoller._update_brpop_polling", "tasks/delivery/transport.py QoS.can_consume"),
    # The gateway's publisher (gateway/submission/capture.py).
    Pin("kombu.transport.redis:Channel.conn_or_acquire", "gateway/submission/capture.py Channel.conn_or_acquire (shared client)"),
    Pin("kombu.transport.redis:Channel._create_client", "gateway/submission/capture.py Channel.conn_or_acquire calls it"),
    Pin("kombu.transport.redis:Channel.create_publish_batch", "gateway/submission/capture.py Channel.create_publish_batch"),
    Pin("kombu.transport.virtual.base:Channel.basic_publish", "gateway/submission/capture.py Channel.basic_publish"),
    Pin("kombu.transport.redis:Channel._put", "gateway/submission/capture.py: the LPUSH a publish adds to its batch"),
    Pin("kombu.transport.redis:Channel._put_fanout", "gateway/submission/capture.py: the PUBLISH a publish adds to its batch"),
    Pin("kombu.transport.redis:PublishBatch.publish", "gateway/submission/capture.py CapturedPublish.publish stands in for it"),
    Pin("kombu.transport.redis:PublishBatch.add", "gateway/submission/capture.py CapturedPublish.add stands in for it"),
    Pin("kombu.messaging:_ProducerBatchState._get_session", "gateway/submission/capture.py: when kombu batches or publishes at once"),
    Pin("kombu.messaging:_ProducerBatchState.publish", "gateway/submission/capture.py: a batched publish goes to the batch"),
    # The Sentinel variants of both transports, and Celery's Sentinel result backend (celeryconfig._sentinel).
    Pin("kombu.transport.redis:SentinelChannel._sentinel_managed_pool", "tasks/delivery/transport.py and "
        "gateway/submission/capture.py SentinelChannel: the pool from every sentinel of connection.alt, its "
        "connection_class from _connparams (GuardedSentinelConnection at the gateway), sentinel_kwargs, master_name"),
    Pin("kombu.connection:Connection.switch", "celeryconfig._stay: a switch to a URL takes the transport from its "
        "scheme; one to a bare host keeps the transport given"),
    Pin("kombu.transport.redis:SentinelChannel._get_pool", "the Sentinel variants: the channels' pool comes from there"),
    Pin("kombu.transport.redis:Channel._disconnect_pools", "the Sentinel variants: a closed channel closes its "
        "connections to the sentinels too"),
    Pin("celery.backends.redis:SentinelBackend._get_sentinel_instance", "celeryconfig._sentinel: sentinel_kwargs "
        "default to none at all (no socket timeout), so they are always given"),
    Pin("celery.backends.redis:SentinelBackend._params_from_url", "settings/addresses.py: the master's credentials "
        "and database are the first URL's"),
    Pin("redis.sentinel:SentinelManagedConnection.__init__", "gateway/health/breaker.py GuardedSentinelConnection "
        "reads connection_pool.service_name"),
    Pin("redis.sentinel:SentinelManagedConnection.read_response", "gateway/health/breaker.py GuardedSentinelConnection: "
        "READONLY from a demoted master becomes a connection error (the breaker counts it)"),
    # Celery's worker (tasks/delivery/bootstep.py, leases.py, watchdog.py).
    Pin("celery.worker.consumer.consumer:Consumer.start", "tasks/delivery/bootstep.py: steps start again after a reconnect"),
    Pin("celery.worker.consumer.tasks:Tasks.start", "tasks/delivery/bootstep.py requires it: the task consumer exists first"),
    Pin("celery.worker.request:Request.__init__", "tasks/delivery/leases.py reads request.message.delivery_tag and request.id"),
    Pin("celery.concurrency.prefork:TaskPool.on_start", "tasks/delivery/watchdog.py pool_pids reads consumer.pool._pool._pool"),
    # The HTTP worker API (gateway/workers/): a kombu delivery in `unacked`, ended as a Celery worker ends it.
    Pin("kombu.transport.redis:Channel._do_restore_message", "gateway/workers/scripts.py TAKE writes `unacked` entries "
        "[message, exchange, routing_key] that this restores to their queue"),
    Pin("kombu.transport.virtual.base:Channel._lookup", "gateway/workers/scripts.py TAKE: the anonymous exchange "
        "restores to the routing key's queue"),
    Pin("celery.backends.base:Backend._get_result_meta", "gateway/workers/endings.py Outcome.meta builds the same meta"),
    Pin("celery.backends.base:Backend.prepare_exception", "gateway/workers/endings.py _exception builds the same"),
    Pin("celery.backends.base:Backend.mark_as_revoked", "gateway/workers/endings.py revoked: TaskRevokedError(reason)"),
    Pin("celery.backends.redis:RedisBackend.set", "gateway/workers/scripts.py END and HEARTBEAT: SET with EX, then PUBLISH"),
    Pin("celery.events.dispatcher:EventDispatcher.publish", "gateway/workers/endings.py event_commands publishes "
        "with our producer (its batch is captured)"),
    Pin("celery.events.dispatcher:EventDispatcher.__init__", "gateway/workers/endings.py event_commands: channel=, "
        "hostname=, buffer_while_offline="),
    # The periodic jobs' scheduler (gateway/schedules/scheduler.py): RedBeat's scheduler, a due entry submitted
    # through the Dispatcher; /ops/schedules reads RedBeat's keys (gateway/schedules/overview.py).
    Pin("celery.beat:Scheduler.apply_async", "gateway/schedules/scheduler.py Scheduler.apply_async replaces it "
        "(reserve, then send): fire first, reserve after"),
    Pin("celery.beat:Scheduler.install_default_entries", "gateway/schedules/scheduler.py installs none"),
    Pin("redbeat.schedulers:RedBeatScheduler.tick", "gateway/schedules/scheduler.py Scheduler.tick wraps it: the lock "
        "extended first (LockNotOwnedError), Redis errors raised"),
    Pin("redbeat.schedulers:RedBeatScheduler.maybe_due", "gateway/schedules/scheduler.py: apply_async is called with "
        "_maybe_due_kwargs, its exceptions logged"),
    Pin("redbeat.schedulers:RedBeatScheduler.setup_schedule", "gateway/schedules/scheduler.py _take_lock_again "
        "writes the entries again with it"),
    Pin("redbeat.schedulers:RedBeatScheduler.close", "gateway/schedules/scheduler.py Scheduler.close: releases the lock"),
    Pin("redbeat.schedulers:acquire_distributed_beat_lock", "gateway/schedules/scheduler.py Scheduler.tick: a failed "
        "acquire leaves scheduler.lock None"),
    Pin("redbeat.schedulers:RedBeatSchedulerEntry.from_key", "gateway/schedules/scheduler.py Entry.from_key: the "
        "schedule replaced by the configured one; last_run_at from meta (gateway/schedules/plan.py tick_of)"),
    Pin("redbeat.schedulers:RedBeatSchedulerEntry._next_instance", "gateway/schedules/overview.py: meta has "
        "total_run_count once a run moved the entry on"),
    Pin("redbeat.schedulers:RedBeatConfig.__init__", "jobs/keys.py BEAT_PREFIX, BEAT_LOCK: the key names"),
    # Traces (tasks/jobtraces.py, gateway/http/requesttraces.py): OpenTelemetry's instrumentations.
    Pin("opentelemetry.instrumentation.celery:CeleryInstrumentor._instrument", "tasks/jobtraces.py start disconnects "
        "the failure and retry receivers connected here"),
    Pin("opentelemetry.instrumentation.celery:CeleryInstrumentor._trace_failure", "tasks/jobtraces.py _failed replaces "
        "it (it records the exception's text)"),
    Pin("opentelemetry.instrumentation.celery:CeleryInstrumentor._trace_retry", "tasks/jobtraces.py _retried replaces "
        "it (it records the reason's text)"),
    Pin("opentelemetry.instrumentation.celery:CeleryInstrumentor._trace_prerun", "tasks/jobtraces.py queue_wait: the "
        "job span's parent is the context the message carries"),
    Pin("opentelemetry.instrumentation.celery.utils:retrieve_context", "tasks/jobtraces.py _job_span"),
    Pin("opentelemetry.instrumentation.flask:_rewrapped_app", "gateway/http/requesttraces.py _without_query: the "
        "response hook runs after the span's attributes are set"),
    Pin("opentelemetry.instrumentation.wsgi:collect_custom_request_headers_attributes", "gateway/http/requesttraces.py "
        "CAPTURE_SWITCHES: the variables read at each request"),
]


def resolve(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = obj.__dict__[part] if isinstance(obj, type) and part in obj.__dict__ else getattr(obj, part)
    return obj


def fingerprint(target: str) -> dict[str, str]:
    """The signature and a digest of the source of `target`, as installed."""
    function = resolve(target)
    function = function.fget if isinstance(function, property) else function
    function = function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
    source = textwrap.dedent(inspect.getsource(function))
    signature = re.sub(r" at 0x[0-9a-f]+>", ">", str(inspect.signature(function)))  # defaults' addresses vary
    return {"signature": signature, "sha256": hashlib.sha256(source.encode()).hexdigest()}


def recorded() -> dict[str, dict[str, str]]:
    return json.loads(PINS_FILE.read_text())


def differences() -> list[str]:
    """One line per pin whose installed source or signature is not the one recorded."""
    pins, found = recorded(), []
    for pin in PINS:
        try:
            now = fingerprint(pin.target)
        except (AttributeError, KeyError, ImportError) as exc:
            found.append(f"{pin.target} is gone ({exc.__class__.__name__}): re-read {pin.ours}")
            continue
        was = pins.get(pin.target)
        if was is None:
            found.append(f"{pin.target} has no pin: read {pin.ours}, then run python -m tests.contract.pins --update")
        elif now != {key: was[key] for key in ("signature", "sha256")}:
            what = "signature" if now["signature"] != was["signature"] else "source"
            found.append(f"{pin.target} changed its {what} since it was pinned ({was.get('version', '?')}): re-read {pin.ours}")
    return found


def _versions() -> str:
    from importlib.metadata import version
    return f"kombu {version('kombu')}, celery {version('celery')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.contract.pins")
    parser.add_argument("--update", action="store_true", help="record the installed sources as the pins")
    args = parser.parse_args(argv)
    if args.update:
        pins = {pin.target: {**fingerprint(pin.target), "version": _versions(), "ours": pin.ours} for pin in PINS}
        PINS_FILE.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
        print(f"pinned {len(pins)} internals of {_versions()} in {PINS_FILE}")
        return 0
    found = differences()
    print("\n".join(found) or f"all {len(PINS)} pins hold")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
