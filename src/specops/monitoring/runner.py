"""One monitor run: the endpoint's inference log over the look-back window against the baseline.

The run reports (JSON, HTML, an MLflow run in the monitor's experiment) and,
when features drift, acts: queues a retraining, asks for a rollback, posts to
the webhook. The window ends at `now`; the controller passes the cron fire
time, so a repeated run of one fire (after a crash) sees the same window and
does not act twice.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd

from specops.apply.audit import AuditLog
from specops.controller.events import Event, EventQueue
from specops.errors import SpecopsError
from specops.lifecycle.tracking import connect, use_experiment
from specops.monitoring.baseline import monitor_baseline
from specops.monitoring.drift import BaselineSummary, DriftReport, FeatureDrift, detect
from specops.monitoring.paths import reports_dir
from specops.monitoring.report import write_reports
from specops.serving.config import endpoint_dir
from specops.serving.inference_log import read_log
from specops.spec.loader import SpecSet
from specops.spec.monitors import Monitor, parse_duration
from specops.spec.refs import resolve

# Fewer logged rows than this cannot be judged: the run is inconclusive, neither a pass nor an alert. Sampling
# noise alone moves the default distances: on the example data (5,000 baseline rows, 60 unshifted windows)
# 59 of 60 windows of 100 rows and 39 of 300 rows breached 0.1; 1 of 60 windows of 1,000 rows did.
MIN_TARGET_ROWS = 1000
WEBHOOK_TIMEOUT_S = 10
Status = Literal["ok", "drift", "inconclusive"]


@dataclass
class MonitorResult:
    monitor: str
    endpoint: str
    status: Status
    window_start: datetime
    window_end: datetime
    target_rows: int
    drift: DriftReport | None = None
    reason: str = ""  # why a run is inconclusive
    actions: list[str] = field(default_factory=list)  # what the alert did, in words
    repeat: bool = False  # the actions were taken by an earlier run of this window, not by this one
    report_dir: Path | None = None

    @property
    def drifted(self) -> list[str]:
        return self.drift.drifted if self.drift else []

    def to_dict(self) -> dict[str, Any]:
        drift = json.loads(self.drift.to_json()) if self.drift else {}
        return {
            "monitor": self.monitor, "endpoint": self.endpoint, "status": self.status,
            "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
            "target_rows": self.target_rows, "baseline_rows": drift.get("baseline_rows"), "reason": self.reason,
            "drifted": self.drifted, "alerts": {f.name: f.alerts for f in self.features if f.alerts},
            "actions": self.actions, "repeat": self.repeat, "signals": drift.get("signals", {}), "features": drift.get("features", []),
        }

    @property
    def features(self) -> list[FeatureDrift]:
        return self.drift.features if self.drift else []


def run_monitor(specs: SpecSet, monitor: Monitor, now: datetime) -> MonitorResult:
    window_start, window_end = monitor_window(monitor, now)
    target = window_frame(specs.root, monitor.spec.target.endpoint, window_start, window_end)
    result = MonitorResult(monitor.name, monitor.spec.target.endpoint, "inconclusive", window_start, window_end, len(target))
    result.report_dir = reports_dir(specs.root, monitor.name) / window_end.strftime("%Y%m%dT%H%M%SZ")
    baseline = None
    if len(target) < MIN_TARGET_ROWS:
        result.reason = f"only {len(target)} logged rows in the window; at least {MIN_TARGET_ROWS} are needed to judge drift"
    else:
        baseline = monitor_baseline(specs, monitor)
        _require_features(target, baseline, monitor)
        result.drift = detect(baseline, target, monitor.spec.data_drift.signals())
        result.status = "drift" if result.drifted else "ok"
    # A window that already alerted (the run repeats after a crash, or by hand) reports again but does not act again.
    earlier = _earlier_actions(result.report_dir)
    if result.drifted:
        result.repeat = bool(earlier)
        result.actions = earlier or act_on_alert(specs, monitor, result)
    write_reports(result.report_dir, result.to_dict(), result.features, baseline, target)
    log_to_mlflow(specs, result)
    return result


def monitor_window(monitor: Monitor, now: datetime) -> tuple[datetime, datetime]:
    target = monitor.spec.target
    end = now.astimezone(timezone.utc)
    if target.lookback_window_offset:
        end -= parse_duration(target.lookback_window_offset)
    return end - parse_duration(target.lookback_window_size), end


def window_frame(root: Path, endpoint: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The logged model inputs with start < time <= end, one row per scored row."""
    low, high = start.timestamp(), end.timestamp()
    # Shadow (mirror) records repeat inputs the live deployment already logged: counting them would weigh them twice.
    rows = [r["inputs"] for r in read_log(endpoint_dir(root, endpoint))
            if low < r["time"] <= high and not r.get("shadow", False)]
    return pd.DataFrame.from_records(rows)


def _require_features(target: pd.DataFrame, baseline: BaselineSummary, monitor: Monitor) -> None:
    missing = [name for name in [*baseline.numeric, *baseline.categorical] if name not in target.columns]
    if missing:
        raise SpecopsError(f"monitor {monitor.name}: endpoint {monitor.spec.target.endpoint}'s inference log has no "
                           f"column(s) {', '.join(missing)} (the model does not read them): list the monitored ones in spec.features")


def _earlier_actions(report_dir: Path) -> list[str]:
    previous = report_dir / "report.json"
    return json.loads(previous.read_text(encoding="utf-8")).get("actions", []) if previous.exists() else []


# --- actions -----------------------------------------------------------------

def act_on_alert(specs: SpecSet, monitor: Monitor, result: MonitorResult) -> list[str]:
    actions = monitor.spec.actions
    done = []
    if actions.retrain:
        done.append(queue_retrain(specs, monitor, result, actions.retrain))
    if actions.rollback:
        done.append(request_rollback(specs, monitor, result, actions.rollback))
    if actions.notify:
        done.append(notify(actions.notify, summary(result)))
    return done


def drifted_values(result: MonitorResult) -> dict[str, dict[str, float]]:
    """Per drifted feature, the values of the metrics that decided (the ones with thresholds)."""
    signals = result.drift.signals
    return {f.name: {m: f.metrics[m] for m in signals.for_type(f.type)} for f in result.features if f.alerts}


def queue_retrain(specs: SpecSet, monitor: Monitor, result: MonitorResult, pipeline: str) -> str:
    event = Event(f"drift:{monitor.name}:{result.window_end.isoformat()}", pipeline, "drift",
                  f"monitor {monitor.name}: {', '.join(result.drifted)} drifted")
    if not EventQueue(specs.root).offer(event):
        return f"retrain of {pipeline} already queued ({event.id})"
    # kpi.py's drift reaction time pairs this entry with retrain_started by `pipeline`.
    AuditLog(specs.root).record(env=specs.env, action="drift_alert", resource=monitor.key, pipeline=pipeline,
                                monitor=monitor.name, event=event.id, features=result.drifted,
                                values=drifted_values(result), window_end=result.window_end.isoformat())
    return f"queued retrain of {pipeline} ({event.id})"


def request_rollback(specs: SpecSet, monitor: Monitor, result: MonitorResult, endpoint: str) -> str:
    # There is no endpoint rollout controller to shift traffic yet: the request is recorded for it (and for people).
    AuditLog(specs.root).record(env=specs.env, action="rollback_requested", resource=f"Endpoint/{endpoint}",
                                monitor=monitor.name, features=result.drifted, window_end=result.window_end.isoformat())
    return f"rollback of endpoint {endpoint} requested (recorded; no rollout controller acts on it yet)"


def summary(result: MonitorResult) -> dict[str, Any]:
    return {"monitor": result.monitor, "endpoint": result.endpoint, "status": result.status,
            "window_start": result.window_start.isoformat(), "window_end": result.window_end.isoformat(),
            "target_rows": result.target_rows, "drifted": drifted_values(result),
            "report": str(result.report_dir / "report.html")}


def notify(reference: str, payload: dict[str, Any]) -> str:
    """POST the summary to the webhook; a failure is reported, never raised. Only `reference` is ever printed."""
    try:
        status = _post(resolve(reference), payload)
    except SpecopsError as exc:
        return f"notify {reference} failed: {exc}"
    except urllib.error.HTTPError as exc:
        return f"notify {reference} failed: HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return f"notify {reference} failed: {exc.reason}"
    except (ValueError, OSError) as exc:  # a malformed URL's message would quote it: name only the kind of failure
        return f"notify {reference} failed: {type(exc).__name__}"
    return f"posted to {reference} (HTTP {status})"


def _post(url: str, payload: dict[str, Any]) -> int:
    # urllib would also open file:// and ftp:// URLs; a webhook is http(s) only.
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SpecopsError("not an http(s) URL")
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
        return response.status


# --- MLflow ------------------------------------------------------------------

def log_to_mlflow(specs: SpecSet, result: MonitorResult) -> None:
    """One run per monitor run, in the experiment `monitor/<name>`: status, decisive metrics, both reports."""
    connect(specs)
    use_experiment(specs, f"monitor/{result.monitor}")
    with mlflow.start_run(run_name=result.window_end.isoformat()):
        mlflow.set_tags({"specops.monitor": result.monitor, "specops.endpoint": result.endpoint,
                         "specops.monitor_status": result.status, "specops.window_end": result.window_end.isoformat(),
                         "specops.drifted": ",".join(result.drifted)})
        mlflow.log_metric("target_rows", result.target_rows)
        for feature in result.features:
            mlflow.log_metrics({f"{feature.name}.{metric}": value for metric, value in feature.metrics.items()
                                if value == value})  # NaN: a feature with no values in the window
        mlflow.log_artifact(str(result.report_dir / "report.json"))
        mlflow.log_artifact(str(result.report_dir / "report.html"))
