"""The fault suite's quick scenarios (faults/scenarios.py), as CI runs them: each starts its own
redis-server (AOF, appendfsync always), OpenBao, gateway and worker, runs 16 clients, strikes by real
means, and reads every acknowledged job back. `./faults/run.sh` runs the same with a printed report."""
from __future__ import annotations

import json

import pytest

from faults.scenarios import by_name, run_scenario


@pytest.mark.parametrize("scenario", by_name(quick=True), ids=lambda scenario: scenario.name)
def test_every_acknowledged_job_ends_once_and_honestly(scenario, tmp_path):
    report = run_scenario(scenario, workdir=tmp_path)
    print(json.dumps(report.summary(), indent=2))
    assert report.failures == []
    assert report.acknowledged > 0 and not report.lost and not report.stuck
