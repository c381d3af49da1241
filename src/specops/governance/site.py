"""`specops report --out site/`: a static site of the system's life over time, for people, with no server.

One page per model (scoreboard rows, each version's model card and lineage,
its metrics across versions), per monitor (each feature's drift statistic per
run against its threshold, with the runs' own reports copied beside), per SLO
(error budget remaining and burn rate over the SLO's window) and per endpoint
(every rollout from the audit log, the latest one's steps and analyses, the
canary's weight over time, the incidents), and an index with the delivery
KPIs. Everything comes from what specops already records (registry, monitor
reports, inference log and scrapes, state, audit log, incident records); the
pages are plain HTML with inline SVG charts (governance/charts.py), so the
folder can be uploaded as a CI artifact or published on GitHub Pages as is.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from specops.core.clock import epoch
from specops.core.files import atomic_write
from specops.governance import charts
from specops.governance.charts import Chart, Series
from specops.project import Project
from specops.state.audit import AuditAction

SERIES_POINTS = 24  # SLO budgets are judged at this many moments across the SLO's window
MODEL_METRICS = ("accuracy", "f1", "auc", "parity_diff")
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML in a card is shown, never run


@dataclass(frozen=True)
class Page:
    kind: str  # index, model, monitor, slo, endpoint
    name: str
    path: Path


@dataclass
class SiteResult:
    folder: Path
    pages: list[Page] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def build_site(project: Project, out: Path, now: float | None = None) -> SiteResult:
    """Write every page under `out` (created; pages of an earlier build are replaced) and return them."""
    from specops.spec import Pipeline
    from specops.spec.endpoints import Endpoint
    from specops.spec.monitors import Monitor
    from specops.spec.slos import SLO

    now = time.time() if now is None else now
    specs = project.specs
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    result = SiteResult(out)
    nav = {"models": sorted({p.spec.model_name for p in specs.of_kind(Pipeline)}),
           "monitors": sorted(m.name for m in specs.of_kind(Monitor)),
           "slos": sorted(s.name for s in specs.of_kind(SLO)),
           "endpoints": sorted(e.name for e in specs.of_kind(Endpoint))}
    common = {"nav": nav, "project": specs.project.name, "env": project.env,
              "generated": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")}

    def write(kind: str, name: str, filename: str, **context: Any) -> None:
        path = out / filename
        atomic_write(path, env.get_template(f"{kind}.html.j2").render(**common, kind=kind, name=name, **context))
        result.pages.append(Page(kind, name, path))

    for model in nav["models"]:
        write("model", model, f"model-{model}.html", **model_page(project, model))
    for monitor in nav["monitors"]:
        write("monitor", monitor, f"monitor-{monitor}.html", **monitor_page(project, monitor, out))
    for slo in specs.of_kind(SLO):
        write("slo", slo.name, f"slo-{slo.name}.html", **slo_page(project, slo, now))
    for endpoint in nav["endpoints"]:
        write("endpoint", endpoint, f"endpoint-{endpoint}.html", **endpoint_page(project, endpoint))
    write("index", "index", "index.html", kpis=_kpis(project))
    return result


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("specops.governance", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = _number
    env.filters["when"] = _when
    # Markup: the chart is built from escaped parts (charts.py); the Markdown renderer has raw HTML off.
    env.globals["chart"] = lambda c: Markup(charts.render(c))
    env.globals["markdown"] = lambda text: Markup(_MARKDOWN.render(text or ""))
    return env


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _when(value: float | str | None) -> str:
    if value is None or value == "":
        return "—"
    seconds = epoch(value) if isinstance(value, str) else float(value)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- models -----------------------------------------------------------------------------------

def model_page(project: Project, model: str) -> dict[str, Any]:
    """The scoreboard rows of `model`, each version's card and lineage, and its metrics across versions."""
    from mlflow.exceptions import MlflowException

    from specops.errors import SpecopsError
    from specops.governance.scoreboard import COLUMNS, cells, scoreboard
    from specops.registry import describe, run_metrics

    rows = [row for row in scoreboard(project.specs) if row.model == model]
    client = project.registry
    versions: list[dict[str, Any]] = []
    series: dict[str, list[tuple[float, float]]] = {metric: [] for metric in MODEL_METRICS}
    try:
        found = list(client.search_model_versions(f"name='{model}'"))
    except MlflowException:
        found = []
    for version in sorted(found, key=lambda v: -int(v.version)):
        created = version.creation_timestamp / 1000
        metrics = run_metrics(client, version)
        for metric in MODEL_METRICS:
            if metric in metrics:
                series[metric].append((created, metrics[metric]))
        try:
            info = describe(project.specs, f"{model}@{version.version}")
        except SpecopsError:
            info = {"lineage": {}, "model_card": None, "aliases": list(version.aliases)}
        versions.append({"version": version.version, "created": created, "aliases": info["aliases"],
                         "lineage": _flatten(info["lineage"]), "card": info["model_card"]})
    chart = Chart(f"{model}: metrics by version (registration time)",
                  [Series(metric, points) for metric, points in series.items() if points])
    return {"columns": COLUMNS, "rows": [cells(row) for row in rows], "versions": versions, "metrics_chart": chart}


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested lineage as (dotted key, value) rows."""
    if isinstance(data, dict):
        return [row for key, value in sorted(data.items()) for row in _flatten(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), _number(data) if isinstance(data, float) else str(data))]


# --- monitors ---------------------------------------------------------------------------------

def monitor_page(project: Project, monitor: str, out: Path) -> dict[str, Any]:
    """Each feature's deciding drift statistics per run, against the thresholds; the runs' reports copied."""
    from specops.monitoring.report import list_reports

    reports = list_reports(project.root, monitor)  # newest first
    runs: list[dict[str, Any]] = []
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (feature, metric) -> [(window end, value)]
    for folder, report in reports:
        html = folder / "report.html"
        link = None
        if html.exists():
            link = f"monitors/{monitor}/{folder.name}.html"
            (out / link).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, out / link)
        runs.append({"window_end": report["window_end"], "status": report["status"], "rows": report.get("target_rows"),
                     "drifted": report.get("drifted", []), "actions": report.get("actions", []), "link": link})
        deciding = report.get("signals", {})
        for feature in report.get("features", []):
            for metric in deciding.get(feature["type"], {}):
                value = feature["metrics"].get(metric)
                if value is not None:
                    points.setdefault((feature["name"], metric), []).append((epoch(report["window_end"]), value))
    latest = reports[0][1].get("signals", {}) if reports else {}
    types = {f["name"]: f["type"] for _, r in reports for f in r.get("features", [])}
    feature_charts = [Chart(f"{feature}: {metric}", [Series(metric, values)],
                            threshold=latest.get(types[feature], {}).get(metric), threshold_label="alert at")
                      for (feature, metric), values in sorted(points.items())]
    return {"runs": runs, "charts": feature_charts}


# --- SLOs -------------------------------------------------------------------------------------

def slo_page(project: Project, slo: Any, now: float) -> dict[str, Any]:
    """Budget remaining and burn rate per objective at SERIES_POINTS moments across the SLO's window."""
    from specops.core.durations import seconds
    from specops.slo.engine import evaluate_series

    span = seconds(slo.spec.window)
    times = [now - span + span * i / (SERIES_POINTS - 1) for i in range(SERIES_POINTS)]
    series = evaluate_series(project.specs, slo, times)
    current = series[-1][1] if series else []
    remaining: dict[str, list[tuple[float, float]]] = {}
    burn: dict[str, list[tuple[float, float]]] = {}
    for t, statuses in series:
        for status in statuses:
            if status.remaining is not None:
                remaining.setdefault(status.objective, []).append((t, status.remaining))
            if status.burn_rate is not None:
                burn.setdefault(status.objective, []).append((t, status.burn_rate))
    return {"slo": slo, "current": current,
            "remaining_chart": Chart("error budget remaining (1 untouched, 0 spent)",
                                     [Series(name, pts) for name, pts in sorted(remaining.items())],
                                     threshold=0.0, threshold_label="exhausted", extra=[1.0]),
            "burn_chart": Chart(f"burn rate over the last {slo.spec.burn_window}",
                                [Series(name, pts) for name, pts in sorted(burn.items())],
                                threshold=1.0, threshold_label="spends it all", extra=[0.0])}


# --- endpoints --------------------------------------------------------------------------------

ROLLOUT_ACTIONS = (AuditAction.ROLLOUT_STARTED, AuditAction.PROMOTE, AuditAction.ROLLBACK, AuditAction.RECOVERED)


def rollouts(entries: Iterable[dict[str, Any]], endpoint: str, env: str) -> list[dict[str, Any]]:
    """Every rollout of `endpoint` in `env` from the audit log, newest first: when it started, what it
    rolled out, and how it ended (promoted, rolled back with the incident, or still running)."""
    resource, found = f"Endpoint/{endpoint}", []
    for entry in entries:
        if entry.get("resource") != resource or entry.get("env", env) != env or entry.get("action") not in ROLLOUT_ACTIONS:
            continue
        action = entry["action"]
        if action == AuditAction.ROLLOUT_STARTED:
            found.append({"started": entry["time"], "strategy": entry.get("strategy"), "stable": entry.get("stable"),
                          "canary": entry.get("canary"), "version": entry.get("version"), "outcome": "in progress",
                          "ended": None, "reason": "", "incident": None})
        elif found and action == AuditAction.PROMOTE:
            found[-1].update(outcome="promoted", ended=entry["time"], reason=entry.get("reason", ""))
        elif found and action == AuditAction.ROLLBACK:
            found[-1].update(outcome="rolled back", ended=entry["time"], reason=entry.get("reason", ""),
                             incident=entry.get("incident"))
    return found[::-1]


def endpoint_page(project: Project, endpoint: str) -> dict[str, Any]:
    record = project.state.rollout(endpoint)
    entries = list(project.audit.entries())
    history = rollouts(entries, endpoint, project.env)
    incident_ids = [e["incident"] for e in entries if e.get("action") == AuditAction.INCIDENT
                    and e.get("resource") == f"Endpoint/{endpoint}" and e.get("incident")]
    incidents = []
    for incident in dict.fromkeys(reversed(incident_ids)):  # newest first, once each
        path = project.paths.incident(incident)
        incidents.append({"id": incident, "text": path.read_text(encoding="utf-8") if path.exists() else None})
    weight_chart = None
    if record is not None:
        weights = [(epoch(h["time"]), float(h["canary"])) for h in record.history if h.get("event") in ("weight", "target reached")]
        start = [(epoch(record.started_at), 0.0)]
        ends = [(epoch(h["time"]), 100.0 if h["event"] == "promoted" else 0.0)
                for h in record.history if h.get("event") in ("promoted", "rolled back")]
        weight_chart = Chart(f"{record.canary} ({record.model} v{record.canary_version}): share of traffic, %",
                             [Series(record.canary, start + weights + ends, step=True)], extra=[0.0, 100.0])
    return {"record": record, "rollouts": history, "incidents": incidents, "weight_chart": weight_chart}


# --- index ------------------------------------------------------------------------------------

def _kpis(project: Project) -> list[dict[str, str]]:
    from specops.governance.kpi import compute

    return [{"name": k.name, "value": k.show(), "target": k.target, "detail": k.detail} for k in compute(project.specs)]
