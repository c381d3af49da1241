"""Dashboards and alerts as code: the KQL files parse, read the metrics specops sends, and feed the workbook
and the alert rules of both Bicep and Terraform; the workbook JSON is valid against its schema."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specops.serving import azure_telemetry

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "infra" / "monitoring"
KQL = MONITORING / "kql"
VIEWS = ("latency-error-trend", "drift-fairness", "canary-vs-champion")
ALERTS = {"alert-p95-latency": "p95_latency_ms", "alert-error-rate": "error_rate", "alert-drift": "drift"}
TABLES = {"requests", "customMetrics"}
# The tabular operators these queries may use (KQL's own names).
OPERATORS = {"where", "summarize", "extend", "project", "render", "order", "sort", "top", "take", "join", "make-series"}
SENT = {azure_telemetry.LATENCY, azure_telemetry.REQUESTS, azure_telemetry.PREDICTION, azure_telemetry.PREDICTION_CLASS,
        azure_telemetry.DRIFT, azure_telemetry.FAIRNESS}


def parse(text: str) -> tuple[str, list[tuple[str, str]]]:
    """A KQL query as (table, [(operator, arguments)]): comments dropped, one `|` stage per operator; raises on
    unbalanced brackets or quotes, an unknown table or operator."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', code)
    assert stripped.count('"') % 2 == 0, "unbalanced quotes"
    depth = 0
    for char in stripped:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0, "a ')' closes nothing"
    assert depth == 0, "unclosed '('"
    table, *stages = [part.strip() for part in stripped.split("|")]
    assert table in TABLES, f"unknown table {table!r}"
    parsed = []
    for stage in stages:
        operator, _, arguments = stage.partition(" ")
        assert operator in OPERATORS, f"unknown operator {operator!r}"
        parsed.append((operator, arguments))
    return table, parsed


def metric_names(text: str) -> set[str]:
    return set(re.findall(r'"(specops_\w+)"', text))


@pytest.mark.parametrize("name", [*VIEWS, *ALERTS])
def test_each_query_parses_and_reads_only_metrics_specops_sends(name):
    text = (KQL / f"{name}.kql").read_text()
    table, stages = parse(text)
    assert any(op == "summarize" for op, _ in stages)
    if table == "customMetrics":
        assert metric_names(text) and metric_names(text) <= SENT, metric_names(text) - SENT


def test_the_parser_rejects_what_kusto_would():
    for bad in ("requests | summarize count(", "requests | sumarize count()", "AppRequest | take 1", 'requests | where name == "x'):
        with pytest.raises(AssertionError):
            parse(bad)


@pytest.mark.parametrize("name, column", ALERTS.items())
def test_each_alert_query_produces_the_column_its_rules_measure(name, column):
    _, stages = parse((KQL / f"{name}.kql").read_text())
    operator, arguments = stages[-1]
    assert operator == "summarize" and re.match(rf"{column}\s*=", arguments)
    bicep = (REPO / "infra" / "bicep" / "modules" / "monitoring.bicep").read_text()
    terraform = (REPO / "infra" / "terraform" / "monitoring.tf").read_text()
    assert f"loadTextContent('../../monitoring/kql/{name}.kql')" in bicep and f"column: '{column}'" in bicep
    assert f'query       = "{name}.kql"' in terraform and f'column      = "{column}"' in terraform


def test_the_views_cover_the_blueprints_three_dashboards():
    latency, drift, canary = ((KQL / f"{v}.kql").read_text() for v in VIEWS)
    assert "percentile(duration, 95)" in latency and "resultCode" in latency
    assert {azure_telemetry.DRIFT, azure_telemetry.FAIRNESS} <= metric_names(drift)
    assert "by deployment" in canary and azure_telemetry.PREDICTION in metric_names(canary)


def test_the_workbook_is_valid_and_runs_the_kql_files():
    import jsonschema

    workbook = json.loads((MONITORING / "workbook.json").read_text())
    schema = json.loads((MONITORING / "workbook.schema.json").read_text())
    jsonschema.validate(workbook, schema)
    queries = {item["name"]: item["content"]["query"] for item in workbook["items"] if item["type"] == 3}
    assert queries == {view: (KQL / f"{view}.kql").read_text() for view in VIEWS}, \
        "workbook.json is stale: its queries must be the infra/monitoring/kql files"
    broken = {**workbook, "items": [{"type": 3, "name": "x", "content": {"version": "KqlItem/1.0", "query": "requests"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)  # a query item without queryType/resourceType/visualization


def test_terraform_and_bicep_declare_the_workbook_rules_and_action_group():
    import hcl2

    with (REPO / "infra" / "terraform" / "monitoring.tf").open() as handle:
        document = hcl2.load(handle)
    resources = {kind.strip('"'): {name.strip('"'): value for name, value in body.items()}
                 for block in document["resource"] for kind, body in block.items()}
    assert {"azurerm_monitor_action_group", "azurerm_application_insights_workbook",
            "azurerm_monitor_scheduled_query_rules_alert_v2"} <= set(resources)
    rule = resources["azurerm_monitor_scheduled_query_rules_alert_v2"]["slo"]
    assert "azurerm_monitor_action_group.slo.id" in json.dumps(rule["action"])
    bicep = (REPO / "infra" / "bicep" / "modules" / "monitoring.bicep").read_text()
    for kind in ("Microsoft.Insights/actionGroups@", "Microsoft.Insights/workbooks@", "Microsoft.Insights/scheduledQueryRules@"):
        assert kind in bicep
    assert "actionGroup.id" in bicep and "loadTextContent('../../monitoring/workbook.json')" in bicep
    assert re.search(r"^module monitoring 'modules/monitoring.bicep'", (REPO / "infra" / "bicep" / "main.bicep").read_text(), re.MULTILINE)
