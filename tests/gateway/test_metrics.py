"""/metrics: counters summed over both gunicorn workers, live queue depth, task outcomes, access control."""
from __future__ import annotations

import random
import re
import string
import uuid

import requests

from devsupport.processes import wait_until
from gateway import create_app
from settings import load_settings
from tests.support.api import b64

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
