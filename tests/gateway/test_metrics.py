"""/metrics: counters summed over both gunicorn workers, live queue depth, task outcomes, access control."""
from __future__ import annotations

import dataclasses
import json
import random
import re
import string
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from devsupport.processes import ROOT, free_port, wait_until
from gateway import create_app, services
from gateway.health.metrics import NAMED_OUTCOMES, OTHER_OUTCOME, SUBMIT_OUTCOMES
from gateway.http.contract import contract_of
from jobs.keys import ALIVE_PREFIX, LANDINGS, landing_key
from settings import load_settings
from tests.support.api import b64, basic_header

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            samples[(match["name"], labels)] = float(match["value"])
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_request_counters_are_summed_across_gunicorn_workers(gateway_url, worker):
    key = dict(route="/ping", method="GET", status="200")
    before = value(scrape(gateway_url), "gateway_http_requests_total", **key)
    for _ in range(60):  # fresh connections: the kernel spreads them over both worker processes
        assert requests.get(gateway_url + "/ping", timeout=5).status_code == 200
    # Several scrapes, answered by whichever worker accepts each: all see the same sum.
    seen = {value(scrape(gateway_url), "gateway_http_requests_total", **key) - before for _ in range(6)}
    assert seen == {60.0}
    assert value(scrape(gateway_url), "gateway_http_request_duration_seconds_count", route="/ping", method="GET") >= 60


def test_both_workers_write_metrics(gateway_url, worker, run_dir):
    """The sum above is a real sum: both worker processes keep their own counter file."""
    for _ in range(40):
        requests.get(gateway_url + "/ping", timeout=5)
    files = wait_until(lambda: len(list((run_dir / "metrics-main").glob("counter_*.db"))) >= 2 and
                       list((run_dir / "metrics-main").glob("counter_*.db")), 10, "two counter files")
    assert len({f.stem.split("_")[1] for f in files}) >= 2


def test_queue_depth_and_oldest_age_are_live(api):
    before = value(scrape(api.base_url), "gateway_queue_depth", queue="parked")
    for i in range(3):
        api.submitted("calc_hash_parked", {"content": b64(f"parked-{i}".encode())})
    samples = scrape(api.base_url)
    assert value(samples, "gateway_queue_depth", queue="parked") == before + 3
    assert value(samples, "gateway_queue_oldest_message_age_seconds", queue="parked") > 0
    assert value(samples, "gateway_broker_up") == 1


def test_submissions_and_task_outcomes_by_type(api, api_as):
    before = scrape(api.base_url)
    done = api.submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)})
    bad = api.submitted("resize_image", {"content": b64(b"not an image"), "width": 5})
    api.wait_status(done, "done")
    api.wait_status(bad, "error")
    assert api_as("copytrust").submit("water_marks", {"content": b64(b"x"), "text": "t"}).status_code == 403
    assert api.submit("calc_hash", {"content": 5}).status_code == 400

    def outcomes_counted():
        after = scrape(api.base_url)
        delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)
        return (delta("gateway_task_outcomes_total", type="calc_hash", status="done", code="0") >= 1
                and delta("gateway_task_outcomes_total", type="resize_image", status="error", code="2") >= 1
                and delta("gateway_submissions_total", type="calc_hash", outcome="accepted") >= 1
                and delta("gateway_submissions_total", type="water_marks", outcome="forbidden") == 1
                and delta("gateway_submissions_total", type="calc_hash", outcome="invalid") == 1
                and delta("gateway_tasks_submitted_total", type="calc_hash") >= 1)
    wait_until(outcomes_counted, 10, "outcome counters")


def clock_passed(since: float, seconds: float) -> None:
    """Wait until `seconds` have passed since `since` (time.monotonic()): a deadline, not a guess."""
    wait_until(lambda: time.monotonic() - since >= seconds, seconds + 5, f"{seconds} s passed")


def test_runtime_and_queue_wait_histograms_hold_a_real_job(api, redis_client, hold_queue_paused):
    """One job of a type nobody else submits, held in its queue and then in its worker for a known
    time at least: each histogram counts it once, with a sum no shorter than the hold."""
    submitted = time.monotonic()
    task_id = api.submitted("hold_timed", {"tag": "timed"})
    clock_passed(submitted, 0.3)
    resumed = time.monotonic()
    hold_queue_paused()  # resume: the worker takes it now
    wait_until(lambda: redis_client.get(f"starts:{task_id}"), 20, "the job started")
    started = time.monotonic()
    clock_passed(started, 0.3)
    redis_client.rpush(f"release:{task_id}", "go")
    api.wait_status(task_id, "done")
    ended = time.monotonic()

    def counted():
        samples = scrape(api.base_url)
        return samples if value(samples, "gateway_task_runtime_seconds_count", type="hold_timed") else None
    samples = wait_until(counted, 10, "the job's timings")
    for name, lower, upper in (("gateway_task_runtime_seconds", 0.3, ended - resumed),
                               ("gateway_task_queue_wait_seconds", 0.3, started - submitted)):
        assert value(samples, f"{name}_count", type="hold_timed") == 1
        assert lower <= value(samples, f"{name}_sum", type="hold_timed") <= upper
        assert value(samples, f"{name}_bucket", type="hold_timed", le="0.25") == 0
        assert value(samples, f"{name}_bucket", type="hold_timed", le="+Inf") == 1


def test_live_workers_per_queue(api, redis_client):
    """The session's worker consumes hash and hold. A node counts for the queues it registered while its
    alive key lives (a node registered with no alive key is a dead worker's)."""
    samples = scrape(api.base_url)
    assert value(samples, "gateway_queue_workers", queue="hash") >= 1
    assert value(samples, "gateway_queue_workers", queue="hold") >= 1
    workers = lambda: value(scrape(api.base_url), "gateway_queue_workers", queue="parked")
    before, node = workers(), f"ghost-{uuid.uuid4().hex[:8]}@test"
    landing = landing_key(node, "parked")
    redis_client.hset(LANDINGS, landing, json.dumps({"node": node, "queue": "parked"}))
    try:
        assert workers() == before
        redis_client.set(ALIVE_PREFIX + node, "1", ex=30)
        assert workers() == before + 1
        redis_client.delete(ALIVE_PREFIX + node)
        assert workers() == before
    finally:
        redis_client.hdel(LANDINGS, landing)
        redis_client.delete(ALIVE_PREFIX + node)


def test_dead_letters_are_counted(api, redis_client):
    before = value(scrape(api.base_url), "gateway_dead_letters")
    task_id = api.submitted("doomed", {"tag": "metrics"})
    assert api.wait_status(task_id, "error")["code"] == 7
    assert value(scrape(api.base_url), "gateway_dead_letters") == before + 1
    redis_client.hdel("gw:deadletters", task_id)


def test_vault_calls_and_auth_decisions_are_measured(api, vault):
    requests.post(api.base_url + "/submit", json={}, auth=("service", "wrong"), timeout=5)
    samples = scrape(api.base_url)
    assert value(samples, "gateway_auth_decisions_total", outcome="denied", reason="vault_refused") >= 1
    assert value(samples, "gateway_vault_request_duration_seconds_count",
                 operation="login_userpass", outcome="refused") >= 1


def test_metrics_token_when_configured(config_files):
    import json
    secrets_path = config_files[1].parent / "metrics-secrets.json"
    secrets = json.loads(config_files[1].read_text()) | {"metrics": {"token": "scrape-token-0123456789"}}
    secrets_path.write_text(json.dumps(secrets))
    client = create_app(load_settings(config_files[0], secrets_path, environ={})).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.get_json() == {"code": 401, "message": "Unauthorized"}
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert allowed.status_code == 200 and b"gateway_queue_depth" in allowed.data


def series(url: str) -> set[tuple[str, frozenset]]:
    """Every time series /metrics exposes, as (family, labels): a histogram's buckets, sum and count, and
    a counter's _total and _created, are one series of one family."""
    family = re.compile(r"_(bucket|sum|count|total|created)$")
    return {(family.sub("", name), frozenset(pair for pair in labels if pair[0] != "le"))
            for name, labels in scrape(url)}


def test_random_methods_and_paths_add_a_handful_of_series(gateway_url, worker):
    """Issue 11, class 8: 300 requests with made-up methods and paths, no credential, once grew /metrics
    from 141 to 4,957 series (the raw method was a label). Every label now has a closed set of values."""
    rng = random.Random(20261123)
    letters = string.ascii_uppercase
    paths = ["/submit", "/taskinfo", "/tasks/" + str(uuid.uuid4()), "/ops/queues", "/docs/assets/x", "/metrics"]
    series(gateway_url)  # the first scrape is itself counted: its own series exist from here on
    before = series(gateway_url)
    with requests.Session() as session:
        for i in range(300):
            method = "".join(rng.choice(letters) for _ in range(rng.randint(3, 12)))
            path = rng.choice(paths) if i % 2 else "/" + "".join(rng.choice(string.ascii_lowercase + "/%._-")
                                                             for _ in range(rng.randint(1, 40)))
            session.request(method, gateway_url + path, timeout=5)
    added = series(gateway_url) - before
    assert len(added) <= 4, sorted(added)


# --- POST /submit: one documented outcome per answer ---------------------------------------------------

def submissions() -> dict[tuple[str, str], float]:
    """This process's gateway_submissions_total by (type, outcome): the in-process apps below count here."""
    return {(sample.labels["type"], sample.labels["outcome"]): sample.value
            for family in REGISTRY.collect() if family.name == "gateway_submissions"
            for sample in family.samples if sample.name == "gateway_submissions_total"}


def parked(external_id: str | None = None, tag: str = "outcome") -> dict[str, Any]:
    return {"type": "calc_hash_parked", "upload": {"content": b64(tag.encode())}} | (
        {"ExternalId": external_id} if external_id else {})


@dataclasses.dataclass
class Gateways:
    """In-process gateways on the session's Redis, Vault and worker: the main one, and ones whose
    configuration or dependencies provoke the rarer answers."""

    settings: Any
    config_files: tuple[Path, Path]
    run_dir: Path
    vault: Any
    main: FlaskClient

    @property
    def admin(self) -> dict[str, str]:
        return basic_header(*self.vault.basic("admin"))

    def bearer(self, client_id: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.vault.jwt(client_id=client_id, client_role="admin")}

    def own(self, change: Callable[[dict], None] = lambda config: None, **environ: str) -> FlaskClient:
        config = json.loads(self.config_files[0].read_text())
        change(config)
        path = self.run_dir / f"config-outcomes-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(config))
        return create_app(load_settings(path, self.config_files[1], environ=environ)).test_client()


@pytest.fixture(scope="module")
def gateways(settings, config_files, run_dir, vault, worker) -> Gateways:
    return Gateways(settings, config_files, run_dir, vault, create_app(settings).test_client())


def repeat(g: Gateways) -> Callable:
    body = parked(f"repeat-{uuid.uuid4()}")
    assert g.main.post("/submit", json=body, headers=g.admin).status_code == 202
    return lambda: g.main.post("/submit", json=body, headers=g.admin)


def conflict(g: Gateways) -> Callable:
    external_id = f"conflict-{uuid.uuid4()}"
    assert g.main.post("/submit", json=parked(external_id, "one"), headers=g.admin).status_code == 202
    return lambda: g.main.post("/submit", json=parked(external_id, "two"), headers=g.admin)


def too_large(g: Gateways) -> Callable:
    limit = g.settings.config["jobs"]["calc_hash_parked"]["max_content_bytes"]
    body = {"type": "calc_hash_parked", "upload": {"content": b64(b"\0" * (limit + 3))}}
    return lambda: g.main.post("/submit", json=body, headers=g.admin)


def rate_limited(g: Gateways) -> Callable:
    client_id = f"outcome-rate-{uuid.uuid4().hex[:8]}"
    client = g.own(lambda config: config["limits"]["rate"]["submit"].update(clients={client_id: "1/hour"}))
    assert client.post("/submit", json=parked(), headers=g.bearer(client_id)).status_code == 202
    return lambda: client.post("/submit", json=parked(), headers=g.bearer(client_id))


def over_cap(g: Gateways) -> Callable:
    client_id = f"outcome-cap-{uuid.uuid4().hex[:8]}"
    client = g.own(lambda config: config["limits"]["max_unfinished"].update(clients={client_id: 1}))
    assert client.post("/submit", json=parked(), headers=g.bearer(client_id)).status_code == 202
    return lambda: client.post("/submit", json=parked(), headers=g.bearer(client_id))


def throttled(g: Gateways) -> Callable:
    """One Vault login per hour for a username nobody has: the second guess (another password, so not
    the refused credential remembered) is throttled."""
    client = g.own(lambda config: config["limits"]["failed_auth"].update(per_username="1/hour"))
    username = f"nobody-{uuid.uuid4().hex[:8]}"
    assert client.post("/submit", json=parked(), headers=basic_header(username, "guess-1")).status_code == 401
    return lambda: client.post("/submit", json=parked(), headers=basic_header(username, "guess-2"))


def dead(g: Gateways, **environ: str) -> Callable:
    client = g.own(**environ)
    return lambda: client.post("/submit", json={"type": "calc_hash", "upload": {"content": b64(b"x")}}, headers=g.admin)


def internal_error(g: Gateways) -> Callable:
    """A bug in the dispatcher: the only way to a 500 is to put one there."""
    class Broken:
        def submit(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("a bug")
    app = create_app(g.settings)
    app.extensions[services.KEY] = dataclasses.replace(app.extensions[services.KEY], dispatcher=Broken())
    return lambda: app.test_client().post("/submit", json=parked(), headers=g.admin)


def free_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}" + ("/0" if scheme == "redis" else "")


# id: (status, type label, outcome, prepare -> the request whose answer is counted). The one answer not
# here, a 503 whose outcome is unknown (`outcome_unknown`), needs a stalled Redis:
# tests/gateway/test_redis_stalls.py counts it.
ANSWERS: dict[str, tuple[int, str, str, Callable[[Gateways], Callable]]] = {
    "accepted": (202, "calc_hash_parked", "accepted", lambda g: lambda: g.main.post("/submit", json=parked(), headers=g.admin)),
    "repeat": (200, "calc_hash_parked", "repeat", repeat),
    "conflict": (409, "calc_hash_parked", "conflict", conflict),
    "invalid": (400, "calc_hash_parked", "invalid",
                lambda g: lambda: g.main.post("/submit", json={"type": "calc_hash_parked", "upload": {"content": 5}},
                                              headers=g.admin)),
    "not-json": (415, "<unknown>", "invalid",
                 lambda g: lambda: g.main.post("/submit", data="type=calc_hash", content_type="text/plain", headers=g.admin)),
    "unauthorized": (401, "<unknown>", "unauthorized", lambda g: lambda: g.main.post("/submit", json=parked())),
    "forbidden": (403, "water_marks", "forbidden",
                  lambda g: lambda: g.main.post("/submit", json={"type": "water_marks", "upload": {"content": "aGk=", "text": "t"}},
                                                headers=basic_header(*g.vault.basic("copytrust")))),
    "too-large": (413, "calc_hash_parked", "too_large", too_large),
    # The rate check rides in the save script, after the body named its type (a caller this process
    # already knows to be over is refused before, under "<unknown>").
    "rate-limited": (429, "calc_hash_parked", "rate_limited", rate_limited),
    "over-cap": (429, "calc_hash_parked", "over_cap", over_cap),
    "throttled": (429, "<unknown>", "throttled", throttled),
    "vault-down": (503, "<unknown>", "auth_unavailable", lambda g: dead(g, GATEWAY__VAULT__URL=free_url("http"))),
    "broker-down": (503, "calc_hash", "broker_down", lambda g: dead(g, GATEWAY__QUEUE__URL=free_url("redis"),
                                                                    GATEWAY__QUEUE__RESULT_URL=g.settings.result_url)),
    "store-down": (503, "calc_hash", "store_down", lambda g: dead(g, GATEWAY__QUEUE__RESULT_URL=free_url("redis"))),
    "bug": (500, "calc_hash_parked", "internal_error", internal_error),
}


@pytest.mark.parametrize("answer", ANSWERS)
def test_each_submit_answer_counts_once_under_its_outcome(gateways, answer):
    """Issue 25: a repeat answered 200 was counted as outcome="error". Each answer adds exactly one to
    one series, the outcome documented for it."""
    status, job_type, outcome, prepare = ANSWERS[answer]
    send = prepare(gateways)
    before = submissions()
    response = send()
    after = submissions()
    assert response.status_code == status, response.get_json()
    changed = {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}
    assert changed == {(job_type, outcome): 1.0}


def test_every_status_submit_answers_has_an_outcome_and_a_case(settings):
    """The statuses /submit declares (its OpenAPI responses) and a bug's 500: each has its outcome, and
    the cases above answer each of them."""
    contract = contract_of(create_app(settings).view_functions["tasks.submit"])
    statuses = set(contract.replies) | contract.errors | {500}
    assert set(SUBMIT_OUTCOMES) == statuses
    assert {status for status, *_ in ANSWERS.values()} == statuses
    named = {outcome for _, _, outcome, _ in ANSWERS.values()} | {"outcome_unknown"}
    assert named == set(SUBMIT_OUTCOMES.values()) | set(NAMED_OUTCOMES)


def test_operations_doc_lists_every_submit_outcome():
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("| outcome | answer |"):]
    table = table[:table.index("\n\n")]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert documented == set(SUBMIT_OUTCOMES.values()) | set(NAMED_OUTCOMES) | {OTHER_OUTCOME}


def test_options_on_submit_is_not_a_submission(gateways):
    before = submissions()
    assert gateways.main.options("/submit").status_code == 200
    assert submissions() == before
