"""`jobgw`, the console script `pip install ./client` puts beside the venv's python, end to end against
the live stack: output for people and `--json` for scripts, the progress bar, `result --out`, the
token command run again after a 401, and every exit status. No credential is ever printed."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid

import pytest

from devsupport.processes import BIN, free_port, wait_until
from jobs.keys import DELAYED
from tests.support import images

JOBGW = BIN / "jobgw"


class Cli:
    """Runs jobgw with GATEWAY_* set for one user (and nothing else of the kind from this environment),
    checking that no secret it was given shows in what it printed."""

    def __init__(self, env: dict[str, str], secrets: list[str]) -> None:
        self.env, self.secrets = env, secrets

    def __call__(self, *args: str, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(JOBGW), *args], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        self.assert_quiet(done.stdout + done.stderr)
        return done

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(JOBGW), *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)

    def assert_quiet(self, output: str) -> None:
        assert not [secret for secret in self.secrets if secret in output], "a credential was printed"


def environment(**gateway: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY")}
    return env | gateway


@pytest.fixture
def cli(gateway_url, worker, vault):
    """cli_as(user): jobgw as that userpass user of the session gateway."""
    def make(user: str = "admin") -> Cli:
        password = vault.passwords[user]
        return Cli(environment(GATEWAY_URL=gateway_url, GATEWAY_USERNAME=user, GATEWAY_PASSWORD=password), [password])
    return make


def test_cli_submit_wait_prints_the_digest_for_people(cli, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(images.png(64, 48))
    done = cli()("submit", "calc_hash", "--file", str(photo), "--set", 'algorithms=["sha256","md5"]', "--wait")
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert f"digests.sha256: {digest}" in done.stdout
    assert "status     done" in done.stdout and "submitted " in done.stderr


def test_cli_submit_json_prints_the_submit_answer(cli):
    done = cli()("submit", "calc_hash_parked", "--set", "content=aGVsbG8=", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["type"] == "calc_hash_parked" and uuid.UUID(answer["uuid"])


def test_cli_submit_delay_holds_the_job_until_its_time(cli, redis_client):
    done = cli()("submit", "calc_hash_parked", "--set", "content=aGVsbG8=", "--delay", "600", "--json")
    assert done.returncode == 0, done.stderr
    task_id = json.loads(done.stdout)["uuid"]
    assert redis_client.zscore(DELAYED, task_id) == pytest.approx(time.time() + 600, abs=30)


def test_cli_wait_json_on_an_image_job_then_result_out(cli, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(images.png(400, 300))
    run = cli()
    done = run("submit", "resize_image", "--file", str(photo), "--set", "width=100", "--set", "format=webp",
               "--wait", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)  # one JSON object: the final TaskInfo
    assert (info["status"], info["code"], info["result"]["width"], info["result"]["format"]) == ("done", 0, 100, "webp")
    out = tmp_path / "small.webp"
    saved = run("result", info["uuid"], "--out", str(out))
    assert saved.returncode == 0, saved.stderr
    assert images.decode(out.read_bytes()).size == (100, 75) and f"{out.stat().st_size} bytes" in saved.stdout
    again = run("get", info["uuid"], "--json")
    assert json.loads(again.stdout) == info


def test_cli_wait_shows_a_progress_bar_with_the_jobs_progress(cli, redis_client):
    """The hold job reports 50 % `holding` and blocks: released once the bar has shown it."""
    process = cli().start("submit", "hold", "--set", "tag=bar", "--wait", "--progress")
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        task_id = wait_until(lambda: next((line.split()[-1] for line in "".join(stderr).splitlines()
                                           if line.startswith("submitted ")), None), 30, "jobgw said the uuid")
        wait_until(lambda: "holding" in "".join(stderr), 30, "the bar showed the job's stage")
        redis_client.rpush(f"release:{task_id}", "go")
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    reader.join(5)
    shown = "".join(stderr)
    assert process.returncode == 0 and "pending 50% holding" in shown and "50%" in shown
    assert "status     done" in stdout and "result     released: True" in stdout


def test_cli_result_json_job_prints_its_json(cli):
    run = cli()
    done = run("submit", "calc_hash", "--set", "content=aGVsbG8=", "--wait", "--json")
    info = json.loads(done.stdout)
    result = run("result", info["uuid"], "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == info["result"]


def test_cli_list_json_lines_and_cancel(gateway_url, worker, vault):
    client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
    token = vault.jwt(client_id=client_id, client_role="admin")
    run = Cli(environment(GATEWAY_URL=gateway_url, GATEWAY_TOKEN=token), [token])
    submitted = [json.loads(run("submit", "calc_hash_parked", "--set", f"content={c}", "--json").stdout)["uuid"]
                 for c in ("YQ==", "Yg==", "Yw==")]
    listed = run("list", "--json")
    assert [json.loads(line)["uuid"] for line in listed.stdout.splitlines()] == submitted[::-1]
    assert run("list", "--limit", "2").stdout.count("calc_hash_parked") == 2
    cancelled = run("cancel", submitted[0], "--json")
    assert cancelled.returncode == 0 and (json.loads(cancelled.stdout)["code"], json.loads(cancelled.stdout)["status"]) == (4, "error")
    people = run("get", submitted[0])
    assert "error 4 (cancelled)" in people.stdout


def test_cli_health_exit_0_when_healthy(gateway_url):
    done = subprocess.run([str(JOBGW), "health"], env=environment(GATEWAY_URL=gateway_url), capture_output=True, text=True,
                          timeout=30)
    assert (done.returncode, done.stdout.strip()) == (0, "All right")


def test_cli_token_command_is_run_again_after_a_401(gateway_url, worker, vault, tmp_path):
    """The command prints a token the gateway refuses (expired past every leeway) on its first run and a
    good one after: jobgw runs it twice and succeeds; neither token is printed."""
    client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
    stale = vault.jwt(client_id=client_id, client_role="service", exp=int(time.time()) - 600, iat=int(time.time()) - 900,
                      nbf=int(time.time()) - 900)
    fresh = vault.jwt(client_id=client_id, client_role="service")
    (tmp_path / "stale").write_text(stale + "\n")
    (tmp_path / "fresh").write_text(fresh + "\n")
    runs = tmp_path / "runs"
    folder = shlex.quote(str(tmp_path))
    command = (f"echo run >> {folder}/runs; "
               f"if [ -s {folder}/seen ]; then cat {folder}/fresh; else echo 1 > {folder}/seen; cat {folder}/stale; fi")
    run = Cli(environment(GATEWAY_URL=gateway_url, GATEWAY_TOKEN_COMMAND=command), [stale, fresh])
    done = run("submit", "calc_hash", "--set", "content=aGVsbG8=", "--wait", "--json", "-v")
    assert done.returncode == 0, done.stderr
    assert runs.read_text().count("run") == 2 and "re-login" in done.stderr
    assert json.loads(done.stdout)["status"] == "done"


@pytest.mark.parametrize("args, env, message", [
    (["get", "x"], {"GATEWAY_URL": ""}, "no gateway"),
    (["submit", "calc_hash", "--set", "novalue"], {}, "--set takes KEY=VALUE"),
    (["submit", "calc_hash", "--file", "/nonexistent/photo.png"], {}, "cannot read"),
    (["get", "x"], {"GATEWAY_TOKEN": "also-a-token"}, "give exactly one of"),
    (["get", "x", "--token", "two words"], {}, "the token is empty or not a single word"),
    (["get", "x"], {"GATEWAY_URL": "ftp://127.0.0.1"}, "must be http"),
    (["frobnicate"], {}, "invalid choice"),
])
def test_cli_usage_error_exits_2(cli, args, env, message):
    done = cli()(*args, **env)
    assert done.returncode == 2 and message in done.stderr


def test_cli_refused_by_the_gateway_exits_2_with_its_code_and_message(cli, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(images.png(8, 8))
    denied = cli("service")("submit", "resize_image", "--file", str(photo), "--set", "width=4")
    assert denied.returncode == 2 and "error: 403 Role may not submit resize_image" in denied.stderr
    invalid = cli()("submit", "resize_image", "--file", str(photo), "--set", "width=0")
    assert invalid.returncode == 2 and "400" in invalid.stderr and "upload.width:" in invalid.stderr
    wrong = Cli(cli().env | {"GATEWAY_PASSWORD": "wrong-password"}, ["wrong-password"])("get", str(uuid.uuid4()))
    assert wrong.returncode == 2 and "401" in wrong.stderr


def test_cli_job_ending_in_error_exits_3_with_its_code(cli):
    done = cli()("submit", "resize_image", "--set", "content=bm90IGFuIGltYWdl", "--set", "width=3", "--wait")
    assert done.returncode == 3
    assert "ended with error code 2 (bad content)" in done.stderr and "status     error 2 (bad content)" in done.stdout


def test_cli_wait_timeout_exits_4(cli):
    done = cli()("submit", "calc_hash_parked", "--set", "content=aGVsbG8=", "--wait", "--timeout", "1")
    assert done.returncode == 4 and "did not finish within 1s" in done.stderr and "jobgw wait" in done.stderr


def test_cli_gateway_unavailable_exits_5_and_tells_how_to_repeat_safely(cli):
    run = cli()
    done = run("submit", "calc_hash", "--set", "content=aGVsbG8=", "--retry-deadline", "1", "--idempotency-key", "k-1",
               GATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 5 and "no answer from the gateway" in done.stderr
    assert "--idempotency-key k-1" in done.stderr
    health = run("health", GATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    assert health.returncode == 5


def test_cli_runs_as_a_module_too(cli):
    done = subprocess.run([sys.executable, "-m", "jobgateway_client", "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("jobgw 1.")


def test_cli_file_from_standard_input(gateway_url, worker, vault, tmp_path):
    password = vault.passwords["admin"]
    env = environment(GATEWAY_URL=gateway_url, GATEWAY_USERNAME="admin", GATEWAY_PASSWORD=password)
    done = subprocess.run([str(JOBGW), "submit", "calc_hash", "--file", "-", "--wait", "--json"], input=b"from stdin",
                          env=env, capture_output=True, timeout=60)
    assert done.returncode == 0
    assert json.loads(done.stdout)["result"]["digests"]["sha256"] == hashlib.sha256(b"from stdin").hexdigest()
    assert password.encode() not in done.stdout + done.stderr
