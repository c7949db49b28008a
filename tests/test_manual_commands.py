"""Starting a worker, the gateway or Flower by hand without the gateway's settings: one message naming each
missing file, where it was looked for and both ways to provide it; exit status 2, no traceback, no
restart loop. Each runs in an empty folder (so no config.json of a developer's is found), with the
project on PYTHONPATH and no GATEWAY_* or CELERY_* variable. No servers: every command stops before it
connects to anything."""
from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest

import celeryconfig
from devsupport.processes import BIN, ROOT, SCHEDULER_COMMAND, free_port
from settings import SettingsError, load_settings
from tasks.app import MONITORS, cli_command

HEADER = "missing configuration, refusing to start:"
# The module, not the Celery app of the same name that tasks/__init__.py exports.
APP_MODULE = importlib.import_module("tasks.app")
FLOWER_HINT = "Flower needs only the broker: celery -A tasks --broker=redis://HOST:PORT/DB flower"


def bare_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY", "CELERY_")) and k != "PYTHONPATH"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return dict(env, PYTHONPATH=str(ROOT))


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env or bare_env(), capture_output=True,
                          text=True, timeout=60)


COMMANDS = {
    "celery-worker": lambda: [BIN / "celery", "-A", "tasks", "worker", "-Q", "hash", "-n", "hash@%h"],
    "gunicorn": lambda: [BIN / "gunicorn", "-c", ROOT / "gunicorn.conf.py", "--bind", f"127.0.0.1:{free_port()}",
                         "wsgi:app"],
    "flower": lambda: [BIN / "celery", "-A", "tasks", "flower", f"--port={free_port()}", "--address=127.0.0.1"],
    "scheduler": lambda: [BIN / "celery", *SCHEDULER_COMMAND[1:]],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_without_settings_one_message_names_both_files_and_both_ways_to_provide_them(tmp_path, name):
    done = run(COMMANDS[name](), tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count(HEADER) == 1, done.stderr
    assert (f"config.json: file not found in the working directory {tmp_path}: copy {ROOT}/config.example.json "
            f"to ./config.json, or set GATEWAY_CONFIG to its path") in done.stderr
    assert (f".secrets.json: file not found in the working directory {tmp_path}: copy {ROOT}/.secrets.example.json "
            f"to ./.secrets.json, or set GATEWAY_SECRETS to its path") in done.stderr
    assert "GATEWAY__QUEUE__URL=redis://HOST:PORT/DB" in done.stderr  # and which Redis it would use
    assert (FLOWER_HINT in done.stderr) == (name == "flower")
    assert "Traceback" not in done.stderr + done.stdout


def test_a_path_given_by_the_variable_is_named_with_the_variable(tmp_path):
    env = dict(bare_env(), GATEWAY_CONFIG=str(tmp_path / "nowhere" / "gateway.json"),
               GATEWAY_SECRETS=str(ROOT / ".secrets.example.json"))
    done = run(COMMANDS["celery-worker"](), tmp_path, env)
    assert done.returncode == 2, done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert problems == [f"  - {tmp_path}/nowhere/gateway.json: file not found (the path GATEWAY_CONFIG names)"]


def test_a_gunicorn_that_read_no_gunicorn_conf_stops_instead_of_restarting_workers(tmp_path):
    """Started outside the project folder (or with --chdir) gunicorn reads no gunicorn.conf.py, so only its
    workers meet the settings: each used to exit 2 and be replaced at once, for ever."""
    done = run([BIN / "gunicorn", "--bind", f"127.0.0.1:{free_port()}", "--no-control-socket", "wsgi:app"], tmp_path)
    assert done.returncode == 3, done.stderr  # gunicorn's "worker failed to boot": the master gives up
    assert "Worker failed to boot" in done.stderr
    assert done.stderr.count(HEADER) == 1 and "GATEWAY_CONFIG" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_in_the_project_folder_the_message_says_what_to_copy_in_the_clones_own_terms(monkeypatch):
    if (ROOT / "config.json").exists():
        pytest.skip("this clone has a config.json")
    monkeypatch.chdir(ROOT)
    with pytest.raises(SettingsError) as error:
        load_settings(environ={"GATEWAY_SECRETS": str(ROOT / ".secrets.example.json")})
    assert error.value.problems == [f"config.json: file not found in the working directory {ROOT}: copy config.example.json "
                                    "to ./config.json, or set GATEWAY_CONFIG to its path"]


@pytest.mark.parametrize(("argv", "command"), [
    (["celery", "-A", "tasks", "flower", "--port=5555"], "flower"),
    (["celery", "-A", "tasks", "--broker=redis://h:6379/0", "flower"], "flower"),
    (["celery", "-A", "tasks", "-b", "redis://h:6379/0", "--workdir", "/app", "flower"], "flower"),
    (["celery", "--app=tasks", "worker", "-Q", "hash", "-n", "flower@%h"], "worker"),
    (["celery", "-A", "tasks"], None),
])
def test_the_celery_command_is_told_apart_from_option_values(argv, command):
    """Only the monitors (MONITORS: Flower, inspect, control, ...) may start without the gateway's settings, so a
    worker named flower@… is still a worker."""
    assert cli_command(argv) == command


@pytest.mark.parametrize("command", sorted(MONITORS))
def test_watching_or_steering_the_workers_with_a_broker_url_reads_no_settings(monkeypatch, command):
    """`celery -A tasks --broker=… inspect|control|flower …` needs only the broker (docs/api.md, Cancel,
    pauses a queue this way from a clone with no config.json)."""
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setattr(APP_MODULE, "worker_settings", lambda **_: pytest.fail("the gateway's settings were read"))
    argv = ["celery", "-A", "tasks", "--broker=redis://127.0.0.1:6379/0", command, "ping"]
    assert APP_MODULE._worker_config(argv) == celeryconfig.monitor()


def test_a_worker_given_a_broker_url_still_reads_the_settings(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

    class SettingsRead(Exception):
        pass

    def read(**_: object) -> None:
        raise SettingsRead

    monkeypatch.setattr(APP_MODULE, "worker_settings", read)
    with pytest.raises(SettingsRead):
        APP_MODULE._worker_config(["celery", "-A", "tasks", "--broker=redis://127.0.0.1:6379/0", "worker", "-Q", "hash"])
