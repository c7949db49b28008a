"""The client as a package: it imports nothing of the gateway (it lives under client/src, outside
import-linter's graph, so its imports are read here), what the tests run is this source as installed,
typed, with its console script, and its dependency ranges admit the versions the project pins."""
from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

import jobgateway_client
from devsupport.processes import BIN, ROOT
from jobgateway_client import webhooks as client_webhooks
from jobs import webhooks

SOURCE = ROOT / "client" / "src" / "jobgateway_client"
THIRD_PARTY = {"httpx", "anyio", "rich"}
OURS = {"gateway", "tasks", "jobs", "settings", "celeryconfig", "deploy", "devsupport", "tests", "bench", "faults"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_client_imports_only_the_standard_library_httpx_anyio_and_rich():
    allowed = set(sys.stdlib_module_names) | THIRD_PARTY | {"jobgateway_client"}
    modules = sorted(SOURCE.glob("*.py"))
    assert len(modules) >= 10
    by_module = {path.name: imported_roots(path) for path in modules}
    assert {name: roots - allowed for name, roots in by_module.items() if roots - allowed} == {}
    assert not set().union(*by_module.values()) & OURS
    assert [name for name, roots in by_module.items() if "rich" in roots] == ["cli.py"]  # the library needs no rich


def test_installed_client_is_this_source_with_its_type_marker():
    installed = Path(jobgateway_client.__file__).parent
    assert installed != SOURCE  # installed as a user installs it (pip install ./client), not run from the tree
    for path in [*SOURCE.glob("*.py"), SOURCE / "py.typed"]:
        copy = installed / path.name
        assert copy.is_file() and copy.read_bytes() == path.read_bytes(), f"{path.name}: installed copy is stale"
    assert importlib.metadata.version("jobgateway-client") == jobgateway_client.__version__
    assert jobgateway_client.__version__.split(".")[0] == jobgateway_client.API_VERSION


def test_jobgw_console_script_is_declared_and_installed():
    scripts = importlib.metadata.distribution("jobgateway-client").entry_points.select(group="console_scripts")
    assert {(script.name, script.value) for script in scripts} == {("jobgw", "jobgateway_client.cli:main")}
    assert (BIN / "jobgw").is_file()


def test_client_dependency_ranges_admit_the_pinned_versions():
    project = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    pins = dict(line.split("==") for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for dependency in map(Requirement, project["dependencies"]):
        assert dependency.name in pins, f"{dependency.name} is not pinned in requirements-dev.txt"
        assert dependency.specifier.contains(pins[dependency.name]), f"{dependency.name}=={pins[dependency.name]}"
        assert importlib.metadata.version(dependency.name) == pins[dependency.name]
    assert {Requirement(d).name for d in project["dependencies"]} == THIRD_PARTY


def test_its_copy_of_the_webhook_header_names_is_the_gateways():
    """The client spells the delivery headers again (it imports nothing of ours): the same names."""
    for name in ("TIMESTAMP_HEADER", "SIGNATURE_HEADER", "SIGNATURES_HEADER", "TASK_HEADER"):
        assert getattr(client_webhooks, name) == getattr(webhooks, name), name
