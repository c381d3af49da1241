"""One monitor run: the endpoint's inference log over the look-back window against the baseline.

The run computes data drift and the other declared signals (prediction drift,
data quality, performance, fairness, feature-attribution drift), reports (JSON,
HTML, an MLflow run in the monitor's experiment) and, when something alerts,
says what it wants done, as each signal's `on_alert` names: a retraining
(reason `drift`, or `performance`), a rollback, a webhook post. Whoever runs
the monitor carries those requests out (`act`, from specops.controller, which
queues retrains and drives rollbacks) and the report records what was done.
The window ends at `now`; the controller passes the cron fire time, so a
repeated run of one fire (after a crash) sees the same window and does not act
twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable

import mlflow
import pandas as pd

from specops.core import http
from specops.core.durations import parse_duration
from specops.errors import SpecopsError
from specops.registry import connect, use_experiment
from specops.monitoring.baseline import monitor_baseline
from specops.monitoring.drift import BaselineSummary, DriftReport, FeatureDrift, detect
from specops.monitoring.model_signals import Window, run_signals
from specops.monitoring.report import write_reports
from specops.spec.signals import SignalResult
from specops.core.paths import ProjectPaths
from specops.serving.inference_log import read_log
from specops.spec.loader import SpecSet
from specops.spec.monitors import MIN_TARGET_ROWS, Monitor, alert_actions  # noqa: F401 (the default)
from specops.spec.refs import resolve

# drift: features drifted; alert: no feature drifted but another signal alerted.
Status = Literal["ok", "drift", "alert", "inconclusive"]
# Signals whose retraining is a drift retraining; performance queues its own reason.
DRIFT_SIGNALS = ("data_drift", "prediction_drift", "feature_attribution_drift")


@dataclass
class MonitorResult:
    monitor: str
    endpoint: str
    status: Status
    window_start: datetime
    window_end: datetime
    target_rows: int
    report_dir: Path  # reports/<window end>/ under the monitor's folder
    drift: DriftReport | None = None
    signals: list[SignalResult] = field(default_factory=list)  # the declared signals besides data drift
    reason: str = ""  # why a run is inconclusive
    actions: list[str] = field(default_factory=list)  # what the alert did, in words
    repeat: bool = False  # the actions were taken by an earlier run of this window, not by this one
    requests: list[Request] = field(default_factory=list)  # what the alert asks for (empty when nothing alerted)

    @property
    def drifted(self) -> list[str]:
        return self.drift.drifted if self.drift else []

    @property
    def alerted(self) -> list[str]:
        """Every signal that alerted: data_drift first, then the others in spec order."""
        return ["data_drift"] * bool(self.drifted) + [s.name for s in self.signals if s.alerted]

    def signal(self, name: str) -> SignalResult:
        return next(s for s in self.signals if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        drift = json.loads(self.drift.to_json()) if self.drift else {}
        return {
            "monitor": self.monitor, "endpoint": self.endpoint, "status": self.status,
            "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
            "target_rows": self.target_rows, "baseline_rows": drift.get("baseline_rows"), "reason": self.reason,
            "drifted": self.drifted, "alerts": {f.name: f.alerts for f in self.features if f.alerts},
            "actions": self.actions, "repeat": self.repeat, "signals": drift.get("signals", {}), "features": drift.get("features", []),
            "alerted_signals": self.alerted, "monitoring_signals": [_finite(s.to_dict()) for s in self.signals],
        }

    @property
    def features(self) -> list[FeatureDrift]:
        return self.drift.features if self.drift else []


@dataclass(frozen=True)
class RetrainRequest:
    pipeline: str
    reason: Literal["drift", "performance"]
    event_id: str  # one per monitor window: a repeated run of the window finds it queued
    detail: str
    evidence: dict[str, Any]  # what the audit entry records: drifted features and values, or the metrics


@dataclass(frozen=True)
class RollbackRequest:
    endpoint: str
    reason: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class NotifyRequest:
    reference: str  # a ${VAR} reference to the webhook URL
    payload: dict[str, Any]


Request = RetrainRequest | RollbackRequest | NotifyRequest
Act = Callable[[Monitor, MonitorResult], list[str]]  # carries the requests out; returns what was done, in words


def run_monitor(specs: SpecSet, monitor: Monitor, now: datetime, act: Act) -> MonitorResult:
    window_start, window_end = monitor_window(monitor, now)
    # Drift reads its window; performance may look further back (labelled_frame): read from the earlier start.
    since = min(window_start, performance_start(monitor, window_end)).timestamp()
    logged = live_records(specs.root, monitor.spec.target.endpoint, since=since)
    records = in_window(logged, window_start, window_end)
    target = pd.DataFrame.from_records([r["inputs"] for r in records])
    report_dir = specs.paths.monitor_reports(monitor.name) / window_end.strftime("%Y%m%dT%H%M%SZ")
    result = MonitorResult(monitor.name, monitor.spec.target.endpoint, "inconclusive", window_start, window_end, len(target),
                           report_dir)
    baseline, compared, minimum = None, target, monitor.spec.min_target_rows
    if len(target) < minimum:
        result.reason = f"only {len(target)} logged rows in the window; at least {minimum} are needed to judge drift"
    else:
        baseline = monitor_baseline(specs, monitor)
        _require_features(target, baseline, monitor)
        # Drift and its figures on numbers; data quality below still sees the raw values.
        compared = numeric_as_numbers(target, baseline)
        result.drift = detect(baseline, compared, monitor.spec.data_drift.signals())
    window = Window(records, target, labelled_frame(monitor, logged, window_end), baseline, result.reason)
    result.signals = run_signals(specs, monitor, window)
    result.status = _status(result)
    # A window that already alerted (the run repeats after a crash, or by hand) reports again but does not act again.
    earlier = _earlier_actions(result.report_dir)
    if result.alerted:
        result.requests = requested(monitor, result)
        result.repeat = bool(earlier)
        result.actions = earlier or act(monitor, result)
    write_reports(result.report_dir, result.to_dict(), result.features, baseline, compared)
    log_to_mlflow(specs, result)
    send_to_app_insights(result)
    return result


def send_to_app_insights(result: MonitorResult) -> int:
    """Drift per feature and the fairness values as App Insights custom metrics (the workbook's drift view and the
    drift alert read them); a no-op without APPLICATIONINSIGHTS_CONNECTION_STRING. Returns the values sent."""
    from specops.serving.azure_telemetry import emit_monitor_values

    fairness = next((s.metrics for s in result.signals if s.name == "fairness"), {})
    return emit_monitor_values(result.monitor, result.endpoint, {f.name: f.metrics for f in result.features}, fairness)


def _status(result: MonitorResult) -> Status:
    if result.drifted:
        return "drift"
    if result.alerted:
        return "alert"
    return "ok" if result.drift is not None else "inconclusive"


def monitor_window(monitor: Monitor, now: datetime) -> tuple[datetime, datetime]:
    target = monitor.spec.target
    end = now.astimezone(UTC)
    if target.lookback_window_offset:
        end -= parse_duration(target.lookback_window_offset)
    return end - parse_duration(target.lookback_window_size), end


def live_records(root: Path, endpoint: str, since: float | None = None) -> list[dict[str, Any]]:
    """The endpoint's logged requests, oldest first, with labels joined where feedback arrived."""
    # Shadow (mirror) records repeat inputs the live deployment already logged: counting them would weigh them twice.
    return [r for r in read_log(ProjectPaths(root).endpoint(endpoint), since) if not r.get("shadow", False)]


def in_window(records: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    low, high = start.timestamp(), end.timestamp()
    return [r for r in records if low < r["time"] <= high]


def performance_start(monitor: Monitor, end: datetime) -> datetime:
    """Where the performance window starts: its own look-back, else the monitor's."""
    performance = monitor.spec.performance
    size = performance.lookback_window_size if performance and performance.lookback_window_size else None
    return end - parse_duration(size or monitor.spec.target.lookback_window_size)


def labelled_frame(monitor: Monitor, records: list[dict[str, Any]], end: datetime) -> pd.DataFrame:
    """Prediction and label of the requests in the performance window that got a label by /feedback."""
    labelled = [(r.get("prediction"), r["label"]) for r in in_window(records, performance_start(monitor, end), end) if "label" in r]
    return pd.DataFrame(labelled, columns=["prediction", "label"])


def numeric_as_numbers(target: pd.DataFrame, baseline: BaselineSummary) -> pd.DataFrame:
    """Numeric features as numbers for the drift engine; a mistyped value (data quality's finding) counts as missing."""
    mixed = [name for name in baseline.numeric if target[name].dtype.kind not in "iuf"]  # booleans too
    if not mixed:
        return target
    return target.assign(**{name: pd.to_numeric(target[name].where(target[name].map(_is_number)), errors="coerce")
                            for name in mixed})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _require_features(target: pd.DataFrame, baseline: BaselineSummary, monitor: Monitor) -> None:
    missing = [name for name in [*baseline.numeric, *baseline.categorical] if name not in target.columns]
    if missing:
        raise SpecopsError(f"monitor {monitor.name}: endpoint {monitor.spec.target.endpoint}'s inference log has no "
                           f"column(s) {', '.join(missing)} (the model does not read them): list the monitored ones in spec.features")


def _earlier_actions(report_dir: Path) -> list[str]:
    previous = report_dir / "report.json"
    return json.loads(previous.read_text(encoding="utf-8")).get("actions", []) if previous.exists() else []


# --- actions -----------------------------------------------------------------

def requested(monitor: Monitor, result: MonitorResult) -> list[Request]:
    """Each alerted signal asks for the actions its on_alert names (data drift: all configured); each action once."""
    actions = monitor.spec.actions
    wanted = {signal: alert_actions(monitor, signal) for signal in result.alerted}  # configured actions only

    def asked(action: str, signals: tuple[str, ...] | None = None) -> bool:
        return any(action in names for signal, names in wanted.items() if signals is None or signal in signals)

    requests: list[Request] = []
    if actions.retrain is not None and asked("retrain", DRIFT_SIGNALS):
        requests.append(_drift_retrain(monitor, result, actions.retrain))
    if actions.retrain is not None and asked("retrain", ("performance",)):
        requests.append(_performance_retrain(monitor, result, actions.retrain))
    if actions.rollback is not None and asked("rollback"):
        requests.append(RollbackRequest(actions.rollback, f"monitor {monitor.name} alerted: {', '.join(result.alerted)}",
                                        {"monitor": monitor.name, "features": result.drifted, "signals": result.alerted,
                                         "window_end": result.window_end.isoformat()}))
    if actions.notify is not None and asked("notify"):
        requests.append(NotifyRequest(actions.notify, summary(result)))
    return requests


def drifted_values(result: MonitorResult) -> dict[str, dict[str, float]]:
    """Per drifted feature, the values of the metrics that decided (the ones with thresholds)."""
    if result.drift is None:
        return {}
    signals = result.drift.signals
    return {f.name: {m: f.metrics[m] for m in signals.for_type(f.type)} for f in result.features if f.alerts}


def signal_alerts(result: MonitorResult, names: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """What each alerted signal (besides data drift) said, e.g. {"performance": ["accuracy 0.85 is 0.05 below ..."]}."""
    return {s.name: s.alerts for s in result.signals if s.alerted and (names is None or s.name in names)}


def _drift_retrain(monitor: Monitor, result: MonitorResult, pipeline: str) -> RetrainRequest:
    others = signal_alerts(result, DRIFT_SIGNALS)
    causes = [f"{', '.join(result.drifted)} drifted"] * bool(result.drifted) + [
        f"{name}: {'; '.join(alerts)}" for name, alerts in others.items()]
    return _retrain(monitor, result, pipeline, "drift", causes, features=result.drifted, values=drifted_values(result),
                    signals=others)


def _performance_retrain(monitor: Monitor, result: MonitorResult, pipeline: str) -> RetrainRequest:
    performance = result.signal("performance")
    return _retrain(monitor, result, pipeline, "performance", performance.alerts, metrics=performance.metrics,
                    labelled_rows=performance.details.get("labelled_rows"))


def _retrain(monitor: Monitor, result: MonitorResult, pipeline: str, reason: Literal["drift", "performance"],
             causes: list[str], **evidence: Any) -> RetrainRequest:
    return RetrainRequest(pipeline, reason, f"{reason}:{monitor.name}:{result.window_end.isoformat()}",
                          f"monitor {monitor.name}: {'; '.join(causes)}",
                          {"monitor": monitor.name, "window_end": result.window_end.isoformat(), **evidence})


def summary(result: MonitorResult) -> dict[str, Any]:
    return {"monitor": result.monitor, "endpoint": result.endpoint, "status": result.status,
            "window_start": result.window_start.isoformat(), "window_end": result.window_end.isoformat(),
            "target_rows": result.target_rows, "drifted": drifted_values(result), "alerts": signal_alerts(result),
            "report": str(result.report_dir / "report.html")}


def notify(reference: str, payload: dict[str, Any]) -> str:
    """POST the summary to the webhook; a failure is reported, never raised. Only `reference` is ever printed."""
    try:
        status = _post(resolve(reference), payload)
    except SpecopsError as exc:  # an unset variable, or RequestFailed: neither quotes the URL
        return f"notify {reference} failed: {exc}"
    except Exception as exc:
        return f"notify {reference} failed: {type(exc).__name__}"
    return f"posted to {reference} (HTTP {status})"


def _post(url: str, payload: dict[str, Any]) -> int:
    # Retried on refused connections, 429 and 5xx (Retry-After obeyed, capped), http(s) only, credentials
    # in the URL sent as basic auth: core.http.WEBHOOK bounds the whole at worst_case_s.
    return http.post_json(url, payload, http.WEBHOOK)


# --- MLflow ------------------------------------------------------------------

def log_to_mlflow(specs: SpecSet, result: MonitorResult) -> None:
    """One run per monitor run, in the experiment `monitor/<name>`: status, decisive metrics, both reports."""
    connect(specs)
    use_experiment(specs, f"monitor/{result.monitor}")
    with mlflow.start_run(run_name=result.window_end.isoformat()):
        mlflow.set_tags({"specops.monitor": result.monitor, "specops.endpoint": result.endpoint,
                         "specops.monitor_status": result.status, "specops.window_end": result.window_end.isoformat(),
                         "specops.drifted": ",".join(result.drifted), "specops.alerts": ",".join(result.alerted)})
        mlflow.log_metric("target_rows", result.target_rows)
        for feature in result.features:
            mlflow.log_metrics({f"{feature.name}.{metric}": value for metric, value in feature.metrics.items()
                                if value == value})  # NaN: a feature with no values in the window
        for signal in result.signals:  # e.g. performance.accuracy, data_quality.income.null_value_rate
            mlflow.log_metrics({f"{signal.name}.{metric}": value for metric, value in signal.metrics.items()
                                if value == value})
        mlflow.log_artifact(str(result.report_dir / "report.json"))
        mlflow.log_artifact(str(result.report_dir / "report.html"))
