"""`specops report`: the static site built from a small hand-made state, then loaded in headless Chromium.

The state is written through specops' own writers (registry entries with lineage and card, monitor
reports, inference log and scrapes, a rolled-back rollout with its incident and audit lines), so the
site is built in seconds without a demo run. Every page must load with no console error and every
chart must draw its series. Set SPECOPS_REPORT_SCREENSHOTS=docs/report to refresh the screenshots.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from specops.core.paths import ProjectPaths
from specops.governance.site import SiteResult, build_site, rollouts
from specops.monitoring.drift import FeatureDrift
from specops.monitoring.report import write_reports
from specops.project import Project
from specops.rollout.incident import write_incident
from specops.state.audit import AuditAction
from specops.state.records import DEGRADED, RolloutRecord
from tests.conftest import without_feedback
from tests.slo.conftest import ENDPOINT, HOUR, NOW, record, write_log, write_scrapes

# One worker builds the module's site (an MLflow store and a browser): `make test` runs with --dist loadgroup.
pytestmark = pytest.mark.xdist_group("report-site")
REPO = Path(__file__).resolve().parents[2]
MODEL = "credit-risk"
SPECS = """\
apiVersion: specops/v1
kind: Endpoint
metadata: {name: scoring}
spec:
  deployments:
    - {name: blue, model: credit-risk@champion}
    - {name: green, model: credit-risk@challenger}
  traffic: {blue: 100}
  rollout:
    strategy: canary
    steps: [{weight: 20}, {analysis: canary-health}, {weight: 50}]
---
apiVersion: specops/v1
kind: Gate
metadata: {name: canary-health}
spec:
  checks:
    - {metric: error_rate, max: 0.01}
---
apiVersion: specops/v1
kind: SLO
metadata: {name: scoring-slo}
spec:
  endpoint: scoring
  window: PT6H
  burn_window: PT30M
  objectives:
    - {sli: availability, target: 0.99}
    - {sli: latency, threshold_ms: 350, target: 0.95}
---
apiVersion: specops/v1
kind: Monitor
metadata: {name: scoring-drift}
spec:
  baseline: {champion: credit-risk}
  target: {endpoint: scoring, lookback_window_size: PT1H}
  schedule: "0 * * * *"
"""


def _project(root: Path) -> Project:
    (root / "specs").mkdir(parents=True)
    for part in ("project.yaml", "data", "gates", "pipelines"):
        source = REPO / "specs" / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / "specs" / part)
    without_feedback(root / "specs" / "pipelines" / "training.yaml")  # it names the example's Endpoint
    (root / "specs" / "scoring.yaml").write_text(SPECS)
    return Project(root, "local")


def _registry(project: Project) -> None:
    """Two versions of the model, each with metrics, a lineage record and a model card, as register writes them."""
    from specops.registry import CHALLENGER, CHAMPION, artifact_dir

    client = project.registry
    experiment = client.create_experiment("report-site")
    client.create_registered_model(MODEL)
    for version, accuracy in (("1", 0.86), ("2", 0.84)):
        run = client.create_run(experiment).info.run_id
        for metric, value in {"accuracy": accuracy, "f1": accuracy - 0.05, "auc": accuracy + 0.05, "parity_diff": 0.04}.items():
            client.log_metric(run, metric, value)
        lineage = {"data": {"md5": f"d41d8cd98f00b204e9800998ecf8427{version}"}, "git": {"commit": f"abc{version}", "dirty": False},
                   "params": {"n_estimators": 100 + 50 * int(version)}}
        client.log_text(run, json.dumps(lineage), f"{artifact_dir(version)}/lineage.json")
        client.log_text(run, f"# {MODEL} v{version}\n\n| metric | value |\n|---|---|\n| accuracy | {accuracy} |\n\n"
                             "<script>alert('cards are shown, never run')</script>\n", f"{artifact_dir(version)}/model_card.md")
        client.set_terminated(run)
        client.create_model_version(MODEL, f"{client.get_run(run).info.artifact_uri}/model", run_id=run)
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    client.set_registered_model_alias(MODEL, CHALLENGER, "2")


def _monitor_reports(root: Path) -> None:
    """Four hourly runs: income drifts away in the last two, as the monitor's own writer reports it."""
    folder = ProjectPaths(root).monitor_reports("scoring-drift")
    signals = {"numerical": {"normalized_wasserstein_distance": 0.1}, "categorical": {"jensen_shannon_distance": 0.1}}
    for run, (income, gender) in enumerate([(0.02, 0.01), (0.04, 0.03), (0.15, 0.02), (0.31, 0.04)]):
        end = pd.Timestamp(NOW - (3 - run) * HOUR, unit="s", tz="UTC")
        features = [FeatureDrift("income", "numerical", {"normalized_wasserstein_distance": income, "psi": income * 2}, {},
                                 [f"normalized_wasserstein_distance {income} >= 0.1"] if income >= 0.1 else []),
                    FeatureDrift("gender", "categorical", {"jensen_shannon_distance": gender}, {}, [])]
        drifted = [f.name for f in features if f.alerts]
        result = {"monitor": "scoring-drift", "endpoint": ENDPOINT, "status": "alert" if drifted else "ok",
                  "window_start": (end - pd.Timedelta(hours=1)).isoformat(), "window_end": end.isoformat(), "target_rows": 500,
                  "baseline_rows": 4000, "reason": "", "drifted": drifted, "actions": ["retrain credit-risk-training"] * bool(drifted),
                  "signals": signals, "features": [{**f.__dict__, "drifted": bool(f.alerts)} for f in features],
                  "alerted_signals": ["data_drift"] * bool(drifted), "monitoring_signals": []}
        write_reports(folder / end.strftime("%Y%m%dT%H%M%SZ"), result, features, None, pd.DataFrame())


def _traffic(root: Path) -> None:
    """Six hours of requests (slow ones in the fourth) and the /metrics scrapes (errors in the fifth)."""
    write_log(root, [record(NOW - 6 * HOUR + i * 60, latency_ms=600.0 if 3 * HOUR <= i * 60 < 4 * HOUR else 20.0)
                     for i in range(360)])
    write_scrapes(root, [(NOW - 6 * HOUR + i * 600, 100.0 * i, 0.0 if i < 24 else 3.0 * (i - 23)) for i in range(37)])


def _rollout(project: Project) -> None:
    """One promoted rollout, then one rolled back at its first analysis with an incident, as the engine logs them."""
    audit, resource = project.audit, f"Endpoint/{ENDPOINT}"
    audit.record(AuditAction.ROLLOUT_STARTED, resource, strategy="canary", stable="blue", canary="green", version="1")
    audit.record(AuditAction.PROMOTE, resource, reason="all steps passed",
                 outputs={"model": MODEL, "version": "1", "aliases": ["champion"]})
    audit.record(AuditAction.ROLLOUT_STARTED, resource, strategy="canary", stable="blue", canary="green", version="2")
    rec = RolloutRecord(ENDPOINT, "canary", "blue", "green", MODEL, "1", "2", weights={"blue": 80, "green": 20})
    rec.log("started", stable="blue", canary="green")
    rec.log("weight", step=0, canary=20)
    analysis = {"time": NOW, "phase": "Failed", "gate": "canary-health",
                "checks": [{"check": "error_rate", "phase": "Failed", "value": 0.04, "limit": "<= 0.01", "note": "canary 4%"}],
                "canary": {"requests": 250, "error_rate": 0.04}, "stable": {"requests": 1000, "error_rate": 0.002}, "skipped": []}
    rec.analyses.append(analysis)
    rec.log("analysis", step=1, phase="Failed", gate="canary-health")
    rec.status, rec.incident, rec.weights = DEGRADED, "INC-20270115-000000-abcd", {"blue": 100}
    rec.log("rolled back", trigger="analysis failed", incident=rec.incident)
    for minute, event in enumerate(rec.history):  # as if the steps had taken minutes, not microseconds
        event["time"] = pd.Timestamp(NOW - 3600 + 300 * minute, unit="s", tz="UTC").isoformat()
    rec.started_at = rec.history[0]["time"]
    path = write_incident(project.paths, project.storage, rec, "analysis canary-health failed", analysis)
    project.state.save_rollout(rec)
    audit.record(AuditAction.ROLLBACK, resource, incident=rec.incident, reason="analysis canary-health failed",
                 stable="blue", canary="green")
    audit.record(AuditAction.INCIDENT, resource, incident=rec.incident, record=str(path))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> SiteResult:
    project = _project(tmp_path_factory.mktemp("report") / "proj")
    _registry(project)
    _monitor_reports(project.root)
    _traffic(project.root)
    _rollout(project)
    return build_site(project, project.root / "site", now=NOW)


def test_the_site_has_a_page_per_model_monitor_slo_and_endpoint(site: SiteResult):
    pages = {(p.kind, p.name) for p in site.pages}
    assert pages == {("index", "index"), ("model", MODEL), ("monitor", "scoring-drift"), ("slo", "scoring-slo"),
                     ("endpoint", ENDPOINT)}
    model = (site.folder / f"model-{MODEL}.html").read_text()
    assert "champion" in model and "candidate" in model  # the scoreboard's roles
    assert "abc2" in model and "n_estimators" in model  # lineage rows
    assert "<script>" not in model and "&lt;script&gt;" in model  # a card's HTML is escaped
    monitor = (site.folder / "monitor-scoring-drift.html").read_text()
    assert "income: normalized_wasserstein_distance" in monitor and "income: psi" not in monitor  # deciding statistics only
    runs = sorted((site.folder / "monitors" / "scoring-drift").glob("*.html"))
    assert len(runs) == 4 and all(f'href="monitors/scoring-drift/{r.name}"' in monitor for r in runs)
    endpoint = (site.folder / f"endpoint-{ENDPOINT}.html").read_text()
    assert "INC-20270115-000000-abcd" in endpoint and "rolled back" in endpoint and "promoted" in endpoint
    for page in site.pages:  # every link between pages resolves
        for link in set(__import__("re").findall(r'href="([^"#]+)"', page.path.read_text())):
            assert (site.folder / link).exists(), f"{page.path.name} links to missing {link}"


def test_rollouts_pair_each_start_with_its_outcome():
    entries = [{"time": "2027-01-01T00:00:00+00:00", "action": "rollout_started", "resource": "Endpoint/e", "version": "1"},
               {"time": "2027-01-01T01:00:00+00:00", "action": "promote", "resource": "Endpoint/e", "reason": "ok"},
               {"time": "2027-01-02T00:00:00+00:00", "action": "rollout_started", "resource": "Endpoint/other", "version": "9"},
               {"time": "2027-01-03T00:00:00+00:00", "action": "rollout_started", "resource": "Endpoint/e", "version": "2",
                "env": "dev"},
               {"time": "2027-01-04T00:00:00+00:00", "action": "rollout_started", "resource": "Endpoint/e", "version": "3"},
               {"time": "2027-01-04T01:00:00+00:00", "action": "rollback", "resource": "Endpoint/e", "incident": "INC-1",
                "reason": "p95"}]
    found = rollouts(entries, "e", "local")
    assert [(r["version"], r["outcome"], r["incident"]) for r in found] == [("3", "rolled back", "INC-1"), ("1", "promoted", None)]


def test_slo_budget_series_spend_when_the_slow_hour_and_the_errors_come(site: SiteResult):
    from specops.slo.engine import evaluate_series
    from specops.spec.slos import SLO

    project = Project(site.folder.parent, "local")
    slo = project.specs.require(SLO, "scoring-slo")
    series = dict(evaluate_series(project.specs, slo, [NOW - 3 * HOUR - 60, NOW]))
    latency_before, latency_after = (next(s for s in series[t] if s.sli_kind == "latency") for t in (NOW - 3 * HOUR - 60, NOW))
    assert latency_before.remaining == 1.0 and latency_after.remaining < 0  # an hour in six slow: 5% allowed
    availability_after = next(s for s in series[NOW] if s.sli_kind == "availability")
    assert availability_after.burn_rate is not None and availability_after.burn_rate > 1


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the report site's browser test needs Chromium from the Debian packages: `apt-get install -y chromium` "
                    "(.ci/run installs it)", pytrace=False)
    return found


# Each chart's drawn size and its series' drawn lengths, as the browser laid them out.
MEASURE = """() => [...document.querySelectorAll('svg.chart')].map(svg => ({
    title: svg.getAttribute('aria-label'), width: svg.getBoundingClientRect().width,
    lengths: [...svg.querySelectorAll('path.series')].map(p => p.getTotalLength())}))"""
CHARTS = {"index": 0, "model": 1, "monitor": 2, "slo": 2, "endpoint": 1}  # page kind -> charts it must draw


def test_every_page_loads_in_chromium_with_no_console_error_and_draws_its_charts(site: SiteResult):
    from playwright.sync_api import sync_playwright

    shots = os.environ.get("SPECOPS_REPORT_SCREENSHOTS")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            for site_page in site.pages:
                page.goto(site_page.path.as_uri(), wait_until="load")
                drawn = page.evaluate(MEASURE)
                assert len(drawn) == CHARTS[site_page.kind], f"{site_page.path.name}: {drawn}"
                for chart in drawn:
                    assert chart["width"] > 100 and chart["lengths"] and all(n > 0 for n in chart["lengths"]), \
                        f"{site_page.path.name}: chart {chart['title']!r} drew nothing: {chart}"
                if shots:
                    Path(shots).mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(Path(shots) / f"{site_page.kind}.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
