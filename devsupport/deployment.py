"""What production runs, read from docker-compose.yml, so the tests start exactly that."""
from __future__ import annotations

import yaml

from devsupport.processes import BIN, ROOT


def compose_argv(service: str) -> list[str]:
    """The service's command from docker-compose.yml, its program taken from this virtualenv."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["command"]
    return [str(BIN / command[0]), *command[1:]]
