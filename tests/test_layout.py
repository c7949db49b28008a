"""The layout answers "where is X decided" by file name (docs/architecture.md): no two modules of the
shipped packages share a name unless they are one concept seen from two sides."""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "tasks", "jobs", "settings", "deploy")
# One concept on two sides: what both sides know (jobs/) and what the workers do with it (tasks/).
TWO_SIDES = {"results.py": {"jobs/results.py", "tasks/results.py"}, "webhooks.py": {"jobs/webhooks.py", "tasks/webhooks.py"}}


def test_module_names_are_unique_across_the_shipped_packages():
    by_name: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py":
                by_name[path.name].add(str(path.relative_to(ROOT)))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1 and TWO_SIDES.get(name) != paths}
    assert shared == {}


def test_celeryconfig_imports_only_the_job_core_settings_and_celery():
    """celeryconfig.py sits below gateway and tasks (each hands it its transport class): it must not
    reach back up to either, nor to development code."""
    allowed = {"jobs", "settings", "celery", "kombu", "__future__"} | set(sys.stdlib_module_names)
    tree = ast.parse((ROOT / "celeryconfig.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - allowed == set()
