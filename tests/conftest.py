"""Session fixtures: a real redis-server on a free port, real Celery workers, the gateway under
gunicorn, all configured through real config.json/.secrets.json files in a temporary folder."""
from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path

import pytest
import requests
from celery import Celery
from redis import Redis

import celeryconfig
from devsupport.deployment import compose_argv
from devsupport.processes import ROOT, Process, free_port, start_gunicorn, start_redis, start_worker, wait_until
from settings import Settings, load_settings
from tests.support.api import Api
from tests.support.receiver import Receiver
from tests.support.vault import SeededVault, start_seeded_vault

WEBHOOK_SECRET = "test-webhook-secret-" + secrets.token_hex(8)
# client-service-2 (user service2) is in the middle of rotating its webhook secret (oldest first).
ROTATING_SECRETS = ("test-webhook-old-" + secrets.token_hex(8), "test-webhook-new-" + secrets.token_hex(8))
HOLD_SCHEMA = ROOT / "tests" / "support" / "hold.json"


def pytest_report_header(config: pytest.Config) -> str:
    return "services: redis-server, celery worker and gunicorn are started by the test session"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def redis_password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def redis_port(run_dir: Path, redis_password: str):
    proc, port = start_redis(run_dir, redis_password)
    wait_until(lambda: Redis(port=port, password=redis_password).ping(), 15, "redis-server ready")
    yield port
    proc.stop()


@pytest.fixture(scope="session")
def vault(run_dir: Path) -> SeededVault:
    """A real OpenBao (`bao server -dev`), configured by deploy/vault_bootstrap.py with one user per role."""
    seeded = start_seeded_vault(run_dir)
    yield seeded
    seeded.server.stop()


def build_test_config(redis_port: int, log_file: Path, vault_url: str) -> dict:
    """config.example.json pointed at the test redis and Vault, plus test-only job types."""
    config = json.loads((ROOT / "config.example.json").read_text())
    config["queue"]["url"] = f"redis://127.0.0.1:{redis_port}/0"
    config["vault"]["url"] = vault_url
    config["logging"].update(level="DEBUG", log_file=str(log_file))
    config["results"]["expired_grace"] = 0
    hash_job, resize_job = config["jobs"]["calc_hash"], config["jobs"]["resize_image"]
    config["jobs"].update({
        # No worker ever consumes `parked`: these stay `created`, or expire.
        "calc_hash_parked": {**hash_job, "queue": "parked"},
        "calc_hash_expiring": {**hash_job, "queue": "parked", "ttl": 1},
        "hold": {**hash_job, "task": "tests.hold", "queue": "hold", "schema": str(HOLD_SCHEMA),
                 "cancel_terminates": True},
        "flaky": {**hash_job, "task": "tests.flaky", "queue": "hold", "schema": str(HOLD_SCHEMA),
                  "retry": {"max_attempts": 3, "backoff": 0.05, "backoff_max": 0.2, "jitter": True}},
        "doomed": {**hash_job, "task": "tests.doomed", "queue": "hold", "schema": str(HOLD_SCHEMA),
                   "retry": {"max_attempts": 2, "backoff": 0.05, "backoff_max": 0.2, "jitter": True}},
        # Only tests/gateway/test_metrics.py submits it: its timing histograms hold that one job.
        "hold_timed": {**hash_job, "task": "tests.hold", "queue": "hold", "schema": str(HOLD_SCHEMA)},
        # Only the tracing worker of tests/test_traces.py consumes `traced`.
        "calc_hash_traced": {**hash_job, "queue": "traced"},
        # Only the per-queue worker test consumes `solo`.
        "calc_hash_solo": {**hash_job, "queue": "solo"},
        # resize_image with bounds no host could meet (only the address-space limit stops it), and
        # with room for a tiny result only (tests/tasks/test_bounds.py).
        "resize_unbounded": {**resize_job, "max_output_pixels": 10**12, "max_output_side": 10**7},
        "resize_small_result": {**resize_job, "max_result_bytes": 2000},
        # Only the worker-loss tests' own workers consume `loss` (tests/tasks/test_worker_loss.py).
        "hold_loss": {**hash_job, "task": "tests.hold", "queue": "loss", "schema": str(HOLD_SCHEMA)},
        "crash": {**hash_job, "task": "tests.crash", "queue": "loss", "schema": str(HOLD_SCHEMA)},
        # Only HTTP workers take these (tests/gateway/test_http_workers.py); `calc_hash_http_short` is
        # the short-lease gateway's of those tests.
        "calc_hash_http": {**hash_job, "queue": "http_only", "max_result_bytes": 65536},
        "calc_hash_http_short": {**hash_job, "queue": "http_short", "time_limit": 4, "soft_time_limit": 3},
        # Only the multi-queue pickup test's worker consumes these (tests/tasks/test_pickup.py).
        **{f"hold_{queue}": {**hash_job, "task": "tests.hold", "queue": queue, "schema": str(HOLD_SCHEMA)}
           for queue in ("pick_a", "pick_b", "pick_c")},
    })
    config["workers"]["queues"] = {"solo": {"concurrency": 3, "prefetch_multiplier": 5}}
    # Tests hammer the gateway; only the clients named here meet limits (tests/gateway/test_limits.py).
    # The replica-* clients are tests/gateway/test_replicas.py's, over three gateways at once.
    config["limits"]["rate"] = {"submit": {"default": "100000/second",
                                           "clients": {"rl-client": "5/minute", "replica-rl-client": "7/day"}},
                                "read": {"default": "100000/second"}}
    config["limits"]["max_unfinished"] = {"default": None, "clients": {"capped-client": 3, "replica-capped-client": 4}}
    # Many tests fail authentication on purpose; tests/gateway/test_auth_guard.py meets these limits.
    config["limits"]["failed_auth"] = {"per_source": None, "per_username": None}
    config["webhooks"] = {"allowed_hosts": ["127.0.0.1", "*.hooks.example"], "max_attempts": 4,
                          "backoff": 0.1, "backoff_max": 0.5}
    config["roles"]["admin"] += ["calc_hash_parked", "calc_hash_expiring", "hold", "hold_timed", "flaky", "doomed",
                                 "resize_unbounded", "resize_small_result", "hold_loss", "crash",
                                 "calc_hash_http", "calc_hash_http_short", "calc_hash_traced"]
    # A test's gateway stops at once on SIGTERM; tests/gateway/test_drain.py starts its own that drains.
    config["ops"] = {"drain_grace": 0, "drain_serve": 0}
    # Fired only while tests/gateway/test_schedules.py runs its schedulers; a client of its own owns the runs.
    config["schedules"] = {"every-second": {"type": "calc_hash", "upload": {"content": "c2NoZWR1bGVk"},
                                            "owner": "client-scheduled", "every": 1}}
    config["scheduler"] = {"max_interval": 0.5, "lock_timeout": 3}
    return config


@pytest.fixture(scope="session")
def config_files(run_dir: Path, redis_port: int, redis_password: str, vault: SeededVault) -> tuple[Path, Path]:
    config_path, secrets_path = run_dir / "config.json", run_dir / ".secrets.json"
    config_path.write_text(json.dumps(build_test_config(redis_port, run_dir / "logs" / "gateway.log", vault.url)))
    secrets_path.write_text(json.dumps({"redis": {"password": redis_password},
                                        "vault": {"token": vault.gateway_token},
                                        "webhooks": {"secrets": {"client-admin": WEBHOOK_SECRET,
                                                                 "client-service-2": list(ROTATING_SECRETS)}}}))
    return config_path, secrets_path


@pytest.fixture(scope="session")
def settings(config_files: tuple[Path, Path]) -> Settings:
    return load_settings(*config_files, environ={})


@pytest.fixture(scope="session")
def service_env(config_files: tuple[Path, Path], vault: SeededVault) -> dict[str, str]:
    """The environment the workers and gunicorn run with: what the Dockerfile, compose and
    run-local.sh give them (config paths), and nothing they lack. No PYTHONPATH: production starts
    `celery -A tasks` and `gunicorn wsgi:app` from the project folder without one, and a test that
    had it would hide an import only it makes work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY") and k != "PYTHONPATH"}
    env.update(GATEWAY_CONFIG=str(config_files[0]), GATEWAY_SECRETS=str(config_files[1]))
    # A stray Vault token in the services' environment (an operator's shell) must never ride along on
    # a user's login: tests/gateway/test_auth.py checks Vault's audit log for that.
    env["VAULT_TOKEN"] = vault.server.root_token
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each gunicorn makes its own (gunicorn.conf.py)
    return env


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Redis:
    return Redis.from_url(settings.broker_url, decode_responses=True)


@pytest.fixture(scope="session")
def celery_client(settings: Settings) -> Celery:
    """Talks to the workers (remote control) the way an operator's tools would."""
    return Celery("tests", config_source=celeryconfig.build(settings, role="worker"), set_as_current=False)


@pytest.fixture(scope="session")
def webhook_worker(service_env: dict[str, str], run_dir: Path, celery_client: Celery) -> Process:
    """The completion-webhook worker, started with exactly the command docker-compose.yml gives
    its `worker-webhooks` service (and README its own), on the queue only it consumes."""
    proc = Process("worker-webhooks", compose_argv("worker-webhooks"), service_env, run_dir)
    yield answering(proc, "webhooks", celery_client)
    proc.stop()


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], run_dir: Path, celery_client: Celery, webhook_worker: Process):
    proc = start_worker("main", "hash,images,hold", service_env, run_dir, extra=["-I", "tests.support.holdjob"])
    yield answering(proc, "main", celery_client)
    proc.stop()


def answering(proc: Process, name: str, celery_client: Celery) -> Process:
    """`proc` once the worker `name@host` answers a ping (a deadline, never a sleep)."""
    node = f"{name}@{socket.gethostname()}"
    wait_until(lambda: proc.alive() and celery_client.control.ping(destination=[node], timeout=0.5),
               60, f"worker {node} ready")
    return proc


@pytest.fixture(scope="session")
def gateway_url(service_env: dict[str, str], run_dir: Path) -> str:
    port = free_port()
    env = dict(service_env, PROMETHEUS_MULTIPROC_DIR=str(run_dir / "metrics-main"))
    proc = start_gunicorn(port, env, run_dir)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200,
               30, "gateway ready")
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def one_worker_gateway_url(service_env: dict[str, str], run_dir: Path) -> str:
    """A second gateway with a single gunicorn worker process (8 threads): one process, one login cache."""
    port = free_port()
    proc = start_gunicorn(port, service_env, run_dir, workers=1)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200,
               30, "single-worker gateway ready")
    yield url
    proc.stop()


@pytest.fixture
def api(gateway_url: str, worker, vault: SeededVault) -> Api:
    """The gateway as the admin user, who may submit every job type and read every task."""
    return Api(gateway_url, auth=vault.basic("admin"))


@pytest.fixture
def api_as(gateway_url: str, worker, vault: SeededVault):
    """api_as("service") -> the gateway as that userpass user; api_as(None) sends no credential."""
    return lambda user: Api(gateway_url, auth=vault.basic(user) if user else None)


@pytest.fixture
def gateway_log(run_dir: Path) -> Path:
    return run_dir / "logs" / "gateway.log"


@pytest.fixture
def hold_queue_paused(celery_client, worker):
    """Stop the worker consuming `hold` so a submitted job stays queued until we resume it."""
    node = f"main@{socket.gethostname()}"
    replies = celery_client.control.cancel_consumer("hold", destination=[node], reply=True, timeout=5)
    assert replies, "worker did not answer cancel_consumer"
    yield lambda: celery_client.control.add_consumer("hold", destination=[node], reply=True, timeout=5)
    celery_client.control.add_consumer("hold", destination=[node], reply=True, timeout=5)


@pytest.fixture(scope="session")
def webhook_secret() -> str:
    """The admin client's webhook signing secret in the test .secrets.json."""
    return WEBHOOK_SECRET


@pytest.fixture(scope="session")
def rotating_webhook_secrets() -> tuple[str, str]:
    """The old and the new webhook secret of client-service-2 (user service2), both in the test
    .secrets.json (old first): deliveries to it are signed with each."""
    return ROTATING_SECRETS


@pytest.fixture
def stalled_port():
    """A TCP server that accepts connections and never answers: the worst kind of outage."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def receiver():
    """receiver() -> a new webhook Receiver (tests/support/receiver.py), closed after the test."""
    made = []

    def make(fail_first: int = 0) -> Receiver:
        made.append(Receiver(fail_first))
        return made[-1]
    yield make
    for r in made:
        r.close()
