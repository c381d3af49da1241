"""Monitor runs on real inference logs: the engine, the reports, MLflow and the alert actions all run for real."""
from __future__ import annotations

import json
from datetime import timedelta

from credit_risk.generate import generate
from specops.state.audit import AuditLog
from specops.controller.events import EventQueue
from specops.registry import connect
from specops.controller.monitors import run_monitor
from specops.monitoring.runner import MIN_TARGET_ROWS, notify
from specops.project import Project
from specops.spec import load_specs
from specops.spec.monitors import Monitor
from tests.monitoring.conftest import FIRE, drifted_day, write_log


def monitor(root):
    specs = load_specs(root)
    return specs, specs.get(Monitor, "credit-drift")


def test_a_drifted_window_alerts_on_the_shifted_feature_only_and_acts_once(project, webhook):
    drifted_day(project)
    specs, spec = monitor(project)
    result = run_monitor(Project.of(specs), spec, FIRE)

    assert result.status == "drift" and result.drifted == ["income"]
    assert result.target_rows == 1000  # yesterday's unshifted rows are outside the window
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["drifted"] == ["income"] and report["alerts"]["income"][0].startswith("normalized_wasserstein_distance")
    html = (result.report_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "income (drifted)" in html
    assert "two_sample_kolmogorov_smirnov_test (p-value)" in html

    [event] = EventQueue(project).pending()
    assert event.id == f"drift:credit-drift:{FIRE.isoformat()}" and event.pipeline == "credit-risk-training"
    assert event.reason == "drift" and "income" in event.detail
    [alert] = [e for e in AuditLog(project).entries() if e["action"] == "drift_alert"]
    assert alert["pipeline"] == "credit-risk-training" and alert["features"] == ["income"]
    assert alert["values"]["income"]["normalized_wasserstein_distance"] >= 0.1
    assert [e["resource"] for e in AuditLog(project).entries() if e["action"] == "rollback_requested"] == ["Endpoint/credit-risk"]
    [post] = webhook.posts
    assert post["monitor"] == "credit-drift" and list(post["drifted"]) == ["income"]
    assert any("posted to ${TEST_DRIFT_WEBHOOK}" in a for a in result.actions)
    assert not any(webhook.url in a for a in result.actions)  # the resolved URL is never written down

    # The same window again (a restarted controller): a report, but no second event, alert or post.
    for _ in range(2):  # twice: the repeat's report must still remember the first run's actions
        again = run_monitor(Project.of(specs), spec, FIRE)
        assert again.drifted == ["income"] and again.repeat and again.actions == result.actions
    assert len(EventQueue(project).statuses()) == 1 and len(webhook.posts) == 1
    assert sum(e["action"] == "drift_alert" for e in AuditLog(project).entries()) == 1

    client = connect(specs)
    experiment = client.get_experiment_by_name("monitor/credit-drift")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and runs[0].data.tags["specops.drifted"] == "income"
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} == {"report.json", "report.html"}


def test_too_little_traffic_is_inconclusive_not_a_pass(project, webhook):
    write_log(project, generate(MIN_TARGET_ROWS - 1, seed=3, drift="income"), FIRE - timedelta(hours=1))
    specs, spec = monitor(project)
    result = run_monitor(Project.of(specs), spec, FIRE)
    assert result.status == "inconclusive" and "999 logged rows" in result.reason
    assert result.drifted == [] and EventQueue(project).pending() == [] and webhook.posts == []
    assert json.loads((result.report_dir / "report.json").read_text())["status"] == "inconclusive"
    assert "inconclusive" in (result.report_dir / "report.html").read_text()


def test_unshifted_traffic_passes_and_shadow_copies_are_not_counted(project, webhook):
    rows = generate(1000, seed=6)
    write_log(project, rows, FIRE - timedelta(hours=3))
    write_log(project, rows, FIRE - timedelta(hours=3), worker=1, shadow=True)
    specs, spec = monitor(project)
    result = run_monitor(Project.of(specs), spec, FIRE)
    assert result.status == "ok" and result.target_rows == 1000
    assert EventQueue(project).pending() == [] and webhook.posts == []


def test_a_failed_webhook_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("TEST_DRIFT_WEBHOOK", "http://127.0.0.1:9/hook")  # the discard port: nothing listens
    outcome = notify("${TEST_DRIFT_WEBHOOK}", {"monitor": "m"})
    assert outcome.startswith("notify ${TEST_DRIFT_WEBHOOK} failed") and "127.0.0.1" not in outcome
    monkeypatch.setenv("TEST_DRIFT_WEBHOOK", "file:///etc/passwd")
    assert notify("${TEST_DRIFT_WEBHOOK}", {}) == "notify ${TEST_DRIFT_WEBHOOK} failed: not an http(s) URL"
    monkeypatch.setenv("TEST_DRIFT_WEBHOOK", "http://[bad")
    assert notify("${TEST_DRIFT_WEBHOOK}", {}) == "notify ${TEST_DRIFT_WEBHOOK} failed: not a valid URL"
    monkeypatch.delenv("TEST_DRIFT_WEBHOOK")
    assert "TEST_DRIFT_WEBHOOK" in notify("${TEST_DRIFT_WEBHOOK}", {})
