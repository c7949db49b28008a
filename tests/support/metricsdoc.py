"""docs/operations.md's metrics table, read as the tests' reference: each family's last column says how
to aggregate it over gateway replicas (`sum`: the replica's own count; `max`: read from Redis, the
same on every replica, so one replica's view)."""
from __future__ import annotations

import re

from devsupport.processes import ROOT

ROW = re.compile(r"^\| `(gateway_\w+)` \| \w+ \|.*\| (sum|max) \|$", re.M)
SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def documented_aggregation() -> dict[str, str]:
    """Metric name (as the table writes it) -> `sum` or `max`."""
    return dict(ROW.findall((ROOT / "docs" / "operations.md").read_text()))


def family(sample: str, documented: dict[str, str]) -> str | None:
    """The documented family a sample name belongs to (`x_bucket` -> `x`, `x_total` -> `x_total`), or None."""
    for name in (sample, *(sample.removesuffix(s) for s in SUFFIXES if sample.endswith(s))):
        for candidate in (name, name + "_total"):
            if candidate in documented:
                return candidate
    return None
