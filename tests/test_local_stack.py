"""scripts/run-local.sh: a stack of its own. Its shell parses; it installs no nginx; its demo users include
`ops`; it refuses a port somebody else holds rather than using what answers there; and, end to end on
free ports with its own redis-server and a run folder in a temporary directory, it serves the gateway,
workers and Flower, prints hints with the ports it really uses, and stops everything on Ctrl-C."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests
from redis import Redis

from devsupport import demo
from devsupport.processes import ROOT, free_port, wait_until
from settings import load_settings
from tests.support.api import b64
from tests.support.local_stack import DEFAULT_PORTS, RUN_LOCAL, free_ports, local_stack, stack_env


@pytest.mark.parametrize("script", ["run-local.sh", "bootstrap.sh", "test.sh", "compose-init.sh"])
def test_shell_syntax_is_valid(script):
    done = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr


def bootstrap_packages(script: Path) -> list[str]:
    """The apt packages a script has scripts/bootstrap.sh install: its BOOTSTRAP_APT, run as the script
    would, up to the line that sources bootstrap.sh."""
    lines = script.read_text().splitlines()
    head = "\n".join(lines[:next(i for i, line in enumerate(lines) if "bootstrap.sh" in line and "source" in line)])
    defaults = next(line for line in (ROOT / "scripts" / "bootstrap.sh").read_text().splitlines()
                    if line.startswith("BOOTSTRAP_APT="))
    shown = subprocess.run(["bash", "-c", f"{head}\n{defaults}\necho \"$BOOTSTRAP_APT\""], capture_output=True,
                           text=True, timeout=10, env={"PATH": os.environ["PATH"]}, cwd=ROOT)
    return shown.stdout.split()


def test_each_script_installs_only_what_it_runs_and_the_tests_get_nginx_promtool_and_node():
    assert bootstrap_packages(RUN_LOCAL) == ["redis-server"]
    # prometheus: promtool (tests/test_monitoring.py); nodejs: the reference HTTP worker
    # (tests/test_node_worker.py, the fault suite's http-worker-kill)
    assert bootstrap_packages(ROOT / "scripts" / "test.sh") == ["redis-server", "nginx", "prometheus", "nodejs"]
    assert bootstrap_packages(ROOT / "faults" / "run.sh") == ["redis-server", "nginx", "prometheus", "nodejs"]
    assert bootstrap_packages(ROOT / "scripts" / "compose-init.sh") == []  # Python only; compose has the servers


def test_demo_users_include_ops_with_its_role_in_the_shipped_configuration(tmp_path):
    demo.init(tmp_path)
    users = json.loads((tmp_path / "users.json").read_text())
    assert users["ops"]["role"] == "ops" and users["ops"]["client_id"] == "client-ops"
    assert set(json.loads((tmp_path / "demo-users.json").read_text())) == {"admin", "service", "copytrust", "ops", "worker"}
    # HTTP workers' login (docs/workers.md): the role is the configured system role.
    assert users["worker"]["role"] == load_settings(ROOT / "config.example.json", ROOT / ".secrets.example.json",
                                                    environ={}).config["vault"]["system_role"]
    config = load_settings(ROOT / "config.example.json", ROOT / ".secrets.example.json", environ={}).config
    assert config["roles"]["ops"] == () and "ops" in config["ops"]["roles"]  # the ops API, and no job type
    assert json.loads((ROOT / "config.example.json").read_text())["roles"]["ops"] == []


def test_a_demo_folder_from_before_ops_gets_it_and_keeps_every_password(tmp_path):
    demo.init(tmp_path)
    users = json.loads((tmp_path / "users.json").read_text())
    del users["ops"]
    (tmp_path / "users.json").write_text(json.dumps(users))
    (tmp_path / "demo-users.json").unlink()
    assert demo.init(tmp_path) == ["users.json", "demo-users.json"]
    again = json.loads((tmp_path / "users.json").read_text())
    assert {name: again[name] for name in users} == users and again["ops"]["role"] == "ops"
    assert json.loads((tmp_path / "demo-users.json").read_text())["ops"] == again["ops"]["password"]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_port_somebody_else_holds_is_refused_not_used(tmp_path):
    """A Redis (or anything) already answering on REDIS_PORT is not the stack's: run-local stops, naming the
    variable, before it starts anything."""
    ports = free_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        ports["REDIS_PORT"] = holder.getsockname()[1]
        done = subprocess.run([str(RUN_LOCAL)], env=stack_env(tmp_path, ports), capture_output=True, text=True,
                              timeout=120, start_new_session=True)
    assert done.returncode == 1, done.stderr
    assert f"something already listens on 127.0.0.1:{ports['REDIS_PORT']}; pick another REDIS_PORT" in done.stderr
    assert not (tmp_path / "run" / "vault").exists()  # nothing was started


def test_a_redis_url_that_does_not_answer_stops_it_without_showing_the_password(tmp_path):
    dead = free_port()
    env = stack_env(tmp_path, free_ports(), REDIS_URL=f"redis://:sesame-0123@127.0.0.1:{dead}/3")
    done = subprocess.run([str(RUN_LOCAL)], env=env, capture_output=True, text=True, timeout=120, start_new_session=True)
    assert done.returncode == 1, done.stderr
    assert f"REDIS_URL (redis://127.0.0.1:{dead}/3) does not answer" in done.stderr
    assert "sesame" not in done.stdout + done.stderr


def test_run_local_end_to_end(tmp_path):
    with local_stack(tmp_path, GATEWAY_WORKERS="1", FLOWER_UNAUTHENTICATED_API="true") as stack:
        proc, ports = stack.proc, stack.ports
        printed = stack.out.read_text()
        gw, flower = stack.gateway, f"http://127.0.0.1:{ports['FLOWER_PORT']}"
        # Every hint names the ports of this run, none a default.
        assert f"Job gateway: {gw}" in printed and f"Flower: {flower}" in printed and f"  GW={gw}\n" in printed
        assert f"VAULT_ADDR=http://127.0.0.1:{ports['VAULT_PORT']} " in printed
        assert f"redis: started on 127.0.0.1:{ports['REDIS_PORT']}" in printed
        assert not [port for port in DEFAULT_PORTS.values() if re.search(rf":{port}(?!\d)", printed)], printed

        passwords = json.loads((tmp_path / "run" / "vault" / "demo-users.json").read_text())
        assert f"Demo users ({', '.join(passwords)})" in printed and "ops" in passwords
        assert requests.get(f"{gw}/health", timeout=5).status_code == 200
        ops = ("ops", passwords["ops"])
        assert requests.get(f"{gw}/ops/queues", auth=ops, timeout=5).status_code == 200
        job = {"type": "calc_hash", "upload": {"content": b64(b"hello")}}
        assert requests.post(f"{gw}/submit", json=job, auth=ops, timeout=5).status_code == 403
        admin = ("admin", passwords["admin"])
        submitted = requests.post(f"{gw}/submit", json=job, auth=admin, timeout=5)
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["uuid"]
        info = wait_until(lambda: (r := requests.get(f"{gw}/taskinfo", params={"taskid": task_id}, auth=admin,
                                                     timeout=5).json())["status"] == "done" and r, 30, "the job done")
        assert info["result"]["digests"]["sha256"].startswith("2cf24dba")
        # The stack's own Redis holds the gateway's record of it.
        assert Redis(port=ports["REDIS_PORT"]).exists(f"gw:task:{task_id}")

        workers = wait_until(lambda: (w := requests.get(f"{flower}/api/workers", params={"refresh": 1}, timeout=10).json())
                             and len(w) == 3 and w, 30, "Flower lists the three workers", interval=0.5)
        assert {name.split("@")[0] for name in workers} == {"hash", "images", "webhooks"}

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(60) == 0
        wait_until(lambda: all(port_free(port) for port in ports.values()), 30, "every port of the stack free")
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)  # nothing of its process group is left
