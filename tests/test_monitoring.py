"""The monitoring that ships with the gateway (deploy/prometheus/, deploy/grafana/): the alert rules and
the Prometheus config pass `promtool check`, the rules pass their unit tests (`promtool test rules`),
every PromQL expression of the rules and the dashboard parses, and names only metrics a live gateway
really exports after a real job ran through a real worker."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from devsupport.processes import ROOT, wait_until
from tests.support.api import Api, b64
from tests.support.metricsdoc import documented_aggregation, family

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "job-gateway.json"
# Debian's `prometheus` package (scripts/bootstrap.sh installs it); /usr/bin is not on every PATH.
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Series Prometheus makes itself, not the gateway.
PROMETHEUS_OWN = {"up"}
# Grafana's variables in range vectors, and what they stand for when promtool reads the expressions.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert Path(PROMTOOL).exists(), "promtool is missing: scripts/bootstrap.sh installs it (apt package prometheus)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    def targets(panels: list[dict]) -> list[str]:
        found = []
        for panel in panels:
            found += [target["expr"] for target in panel.get("targets", [])]
            found += targets(panel.get("panels", []))
        return found
    return targets(json.loads(DASHBOARD.read_text())["panels"])


def as_promql(expression: str) -> str:
    for variable, duration in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, duration)
    return expression


# PromQL words that are not metric names, and clauses whose parenthesised list names labels.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "atan2"}
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not a function or aggregation (those
    are followed by `(`), a keyword, a label in a matcher or grouping list, a string, or a duration."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', as_promql(expression))  # strings
    text = re.sub(r"\{[^}]*\}", "{}", text)                           # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)                          # ranges and subqueries
    text = LABEL_LISTS.sub(" ", text)                                  # grouping and matching labels
    text = re.sub(r"\boffset\s+\w+", " ", text)                        # offset durations
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        if not match.group(2) and match.group(1).lower() not in KEYWORDS:
            names.add(match.group(1))
    return names


def test_metric_names_finds_selectors_only():
    expression = ('histogram_quantile(0.95, sum by (type, le) (max without (instance) '
                  '(rate(a_bucket{status="error", code!~"2|4"}[$__rate_interval])))) / on (type) group_left '
                  'sum(b_total offset 30m) > bool 1e3 and max(c)')
    assert metric_names(expression) == {"a_bucket", "b_total", "c"}


def test_alert_rules_pass_promtool_check():
    checked = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_config_loads_the_alert_rules():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    checked = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout


def scrape_configs_in_the_docs() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    return [block for block in re.findall(r"```yaml\n(.*?)```", text, re.S) if "scrape_configs:" in block]


def test_the_scrape_configs_in_the_docs_are_valid_and_one_is_the_shipped_one(tmp_path):
    """Each example is a whole Prometheus config that promtool accepts, the job named as the rules expect.
    Debian's promtool is built without Kubernetes discovery: that example is read as YAML only."""
    blocks = scrape_configs_in_the_docs()
    assert len(blocks) == 3
    shipped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    for i, block in enumerate(blocks):
        (job,) = yaml.safe_load(block)["scrape_configs"]
        assert job["job_name"] == "job-gateway"
        if "kubernetes_sd_configs" in job:
            continue
        path = tmp_path / f"scrape-{i}.yml"
        path.write_text(block)
        checked = promtool("check", "config", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert yaml.safe_load(blocks[0])["scrape_configs"][0]["dns_sd_configs"] == shipped[0]["dns_sd_configs"]


def test_alert_rules_pass_their_unit_tests():
    tested = promtool("test", "rules", str(PROMETHEUS / "alerts.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    assert {rule["alert"] for rule in alert_rules()} == fired


def test_every_alert_says_what_it_means():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_dashboard_expressions_are_valid_promql(tmp_path):
    """promtool parses each expression, given as a recording rule."""
    rules = [{"record": f"dashboard:expression_{i}", "expr": as_promql(expression)}
             for i, expression in enumerate(dashboard_expressions())]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


AGGREGATIONS = {"sum", "max", "min", "avg", "count", "group", "topk", "bottomk", "quantile", "count_values",
                "stddev", "stdvar"}


def aggregations_around(expression: str, position: int) -> list[tuple[str, str | None]]:
    """The aggregation operators enclosing `position`, innermost first, each with its grouping (`by`,
    `without` or None): in `sum by (type) (max by (type, le) (rate(x[5m])))`, for x: max/by, sum/by."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + " " * (len(m[0]) - 2) + '"', expression)
    found, depth = [], 0
    for i in range(position - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(" and depth:
            depth -= 1
        elif text[i] == "(":
            head, grouping = text[:i].rstrip(), None
            clause = re.search(r"\b(by|without)\s*\([^()]*\)$", head)
            if clause:
                grouping, head = clause[1], head[:clause.start()].rstrip()
            word = re.search(r"(\w+)$", head)
            if word and word[1] in AGGREGATIONS:
                found.append((word[1], grouping))
    return found


def test_aggregations_around_finds_the_enclosing_operators():
    expression = 'sum by (type) (max by (type, le) (rate(a_1{a="("}[5m]))) / max(b_2) and c_3'
    assert aggregations_around(expression, expression.index("a_1")) == [("max", "by"), ("sum", "by")]
    assert aggregations_around(expression, expression.index("b_2")) == [("max", None)]
    assert aggregations_around(expression, expression.index("c_3")) == []


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_expressions_count_what_every_replica_reports_once(source):
    """A family read from Redis (`max` in docs/operations.md) is the same on every replica: its nearest
    aggregation takes one replica's view, `max` or `min`, grouped `by` its own labels (with `without
    (instance)`, a pod label that service discovery adds would keep replicas apart, and a sum over them
    counts every job three times on three replicas). A per-replica family (`sum`) is summed."""
    documented = documented_aggregation()
    expressions = [rule["expr"] for rule in alert_rules()] if source == "alerts" else dashboard_expressions()
    checked = set()
    for expression in expressions:
        for selector in re.finditer(r"(?<![\w:])gateway_\w+", expression):
            name = family(selector[0], documented)
            assert name, (expression, selector[0])
            enclosing = aggregations_around(expression, selector.start())
            nearest = enclosing[0] if enclosing else (None, None)
            if documented[name] == "max":
                assert nearest[0] in ("max", "min") and nearest[1] != "without", (expression, name, nearest)
            else:
                assert nearest[0] == "sum", (expression, name, nearest)
            checked.add(documented[name])
    assert checked == {"max", "sum"}


def test_every_dashboard_expression_is_evaluated_over_three_replicas():
    """alerts.test.yml's last group gives each expression of the dashboard, as promtool reads it, three
    replicas' series and the figure one service should show."""
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    (replicas,) = [test for test in tests if "three replicas" in test["name"] and test.get("promql_expr_test")]
    instances = {re.search(r'instance="([^"]+)"', s["series"])[1] for s in replicas["input_series"]}
    assert len(instances) == 3
    evaluated = {case["expr"] for case in replicas["promql_expr_test"]}
    assert {as_promql(expression) for expression in dashboard_expressions()} <= evaluated


def test_dashboard_has_the_panels_ops_look_for():
    titles = " | ".join(panel["title"].lower() for panel in json.loads(DASHBOARD.read_text())["panels"])
    for wanted in ("workers", "queue length", "oldest", "tasks finished by type", "failure ratio",
                   "runtime p50 / p95", "queue wait p50 / p95", "top error codes"):
        assert wanted in titles, wanted


def exported_labels(url: str) -> dict[str, set[str]]:
    """Sample name -> the label names its series carry, from a live /metrics."""
    labels: dict[str, set[str]] = {}
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            labels.setdefault(name.split(" ")[0], set()).update(re.findall(r'(\w+)="', rest.rpartition("}")[0]))
    return labels


@pytest.fixture(scope="module")
def exported(gateway_url, worker, vault) -> dict[str, set[str]]:
    """The sample names a live gateway exports once a job ran through a real worker (so the task
    families, which have no series before, have theirs)."""
    api = Api(gateway_url, auth=vault.basic("admin"))
    task_id = api.submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)})
    api.wait_status(task_id, "done")
    return wait_until(lambda: (found := exported_labels(api.base_url)).get("gateway_task_runtime_seconds_count")
                      and found, 10, "the job's timings exported")


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_expressions_name_only_metrics_the_gateway_exports(source, exported):
    expressions = ([rule["expr"] for rule in alert_rules()] if source == "alerts" else dashboard_expressions())
    named = set().union(*(metric_names(expression) for expression in expressions))
    assert named and named - PROMETHEUS_OWN <= set(exported), sorted(named - PROMETHEUS_OWN - set(exported))


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_expressions_use_only_labels_their_metrics_carry(source, exported):
    """Label matchers name labels of their own metric; grouping clauses name labels of some metric of
    the expression. Prometheus adds `job` and `instance` to every series it scrapes."""
    expressions = ([rule["expr"] for rule in alert_rules()] if source == "alerts" else dashboard_expressions())
    for expression in expressions:
        text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
        carried = {"job", "instance"}.union(*(exported.get(name, set()) for name in metric_names(expression)))
        for name, matchers in re.findall(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", text):
            used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
            assert used <= exported.get(name, set()) | {"job", "instance"}, (expression, used)
        for grouped in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
            used = {label.strip() for label in grouped.split(",") if label.strip()}
            assert used <= carried, (expression, used - carried)


def test_operations_doc_lists_every_metric_the_gateway_exports(exported):
    text = (ROOT / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(gateway_\w+)` \|", text, re.M))
    suffixes = ("", "_bucket", "_sum", "_count", "_created")
    missing = {name for name in exported if name.startswith("gateway_")
               and not any(name.removesuffix(s) in documented or name.removesuffix(s) + "_total" in documented
                           for s in suffixes if name.endswith(s))}
    assert not missing, sorted(missing)
