"""Custom metrics for Application Insights from the Azure scoring path and the monitors (azure-monitor-opentelemetry).

The names below are what the workbook and the alert rules query (infra/monitoring/kql/*.kql): App
Insights stores each instrument under its name in `customMetrics`, with the attributes as
`customDimensions`. Histograms reach App Insights pre-aggregated (sum, count, min, max per interval), so
p95 latency is read from the `requests` table that the same distro fills from the HTTP server; the
latency histogram gives the per-deployment mean and the canary-vs-champion comparison.

    specops_request_latency_ms   histogram  deployment, endpoint, result (success | client_error | server_error)
    specops_requests             counter    deployment, endpoint, result
    specops_prediction           histogram  deployment, endpoint (numeric predictions: scores, probabilities)
    specops_prediction_class     counter    deployment, endpoint, prediction (class labels)
    specops_feature_drift        gauge      monitor, endpoint, feature, metric (e.g. normalized_wasserstein_distance)
    specops_fairness             gauge      monitor, endpoint, metric (e.g. parity_diff)

Without APPLICATIONINSIGHTS_CONNECTION_STRING (or the AML_APP_INSIGHTS_KEY that Azure ML sets in a
deployment with app_insights_enabled) (a deployment without App Insights, a local run) every
call is a no-op and one log line says so. Tests pass their own MeterProvider.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.metrics import MeterProvider

CONNECTION_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# What Azure ML sets in a deployment's container when app_insights_enabled is true (the inference server reads it).
AML_KEY_ENV = "AML_APP_INSIGHTS_KEY"
METER = "specops"
LATENCY, REQUESTS = "specops_request_latency_ms", "specops_requests"
PREDICTION, PREDICTION_CLASS = "specops_prediction", "specops_prediction_class"
DRIFT, FAIRNESS = "specops_feature_drift", "specops_fairness"

log = logging.getLogger(__name__)
_configured: MeterProvider | None = None
_lock = threading.Lock()


def azure_meter_provider() -> MeterProvider | None:
    """The process's Azure Monitor meter provider, configured once from the connection string; None without one."""
    global _configured
    with _lock:
        if _configured is None:
            connection = connection_string()
            if not connection:
                log.info("%s is not set: specops sends no custom metrics to Application Insights", CONNECTION_ENV)
                return None
            from azure.monitor.opentelemetry import configure_azure_monitor
            from opentelemetry import metrics

            configure_azure_monitor(connection_string=connection)
            _configured = metrics.get_meter_provider()
        return _configured


def connection_string() -> str | None:
    """APPLICATIONINSIGHTS_CONNECTION_STRING, else the instrumentation key Azure ML hands an App Insights-enabled deployment."""
    if os.environ.get(CONNECTION_ENV, "").strip():
        return os.environ[CONNECTION_ENV].strip()
    key = os.environ.get(AML_KEY_ENV, "").strip()
    return f"InstrumentationKey={key}" if key else None


def result_of(status: int) -> str:
    return "success" if status < 400 else "client_error" if status < 500 else "server_error"


class ScoringTelemetry:
    """What one deployment's scoring script records per request; `enabled` is False when it records nothing."""

    def __init__(self, deployment: str, endpoint: str = "", meter_provider: MeterProvider | None = None):
        provider = meter_provider or azure_meter_provider()
        self.enabled = provider is not None
        self._attributes = {"deployment": deployment, "endpoint": endpoint}
        if provider is None:
            return
        meter = provider.get_meter(METER)
        self._latency = meter.create_histogram(LATENCY, unit="ms", description="scoring request latency")
        self._requests = meter.create_counter(REQUESTS, description="scoring requests by result")
        self._prediction = meter.create_histogram(PREDICTION, description="numeric predictions (scores, probabilities)")
        self._classes = meter.create_counter(PREDICTION_CLASS, description="predicted class labels")

    def record_request(self, latency_ms: float, status: int = 200) -> None:
        if not self.enabled:
            return
        attributes = {**self._attributes, "result": result_of(status)}
        self._latency.record(latency_ms, attributes)
        self._requests.add(1, attributes)

    def record_predictions(self, predictions: Iterable[Any]) -> None:
        """Numbers go to the prediction histogram; anything else (class labels) is counted per label."""
        if not self.enabled:
            return
        for value in predictions:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self._classes.add(1, {**self._attributes, "prediction": str(value)})
            else:
                self._prediction.record(float(value), self._attributes)

    @contextmanager
    def request(self) -> Iterator[None]:
        """Times the block as one request: a block that raises counts as a server error (and re-raises)."""
        started, status = time.perf_counter(), 200
        try:
            yield
        except Exception:
            status = 500
            raise
        finally:
            self.record_request((time.perf_counter() - started) * 1000, status)


def emit_monitor_values(monitor: str, endpoint: str, drift: Mapping[str, Mapping[str, float | None]],
                        fairness: Mapping[str, float | None] | None = None, meter_provider: MeterProvider | None = None) -> int:
    """A monitor run's drift statistics per feature (feature -> metric -> value) and fairness values as gauges;
    returns how many values were sent (0 without App Insights). Missing values (None, NaN) are skipped."""
    provider = meter_provider or azure_meter_provider()
    if provider is None:
        return 0
    meter = provider.get_meter(METER)
    drift_gauge = meter.create_gauge(DRIFT, description="drift statistic per feature, per monitor run")
    fairness_gauge = meter.create_gauge(FAIRNESS, description="fairness metric per monitor run")
    sent = 0
    for feature, metrics in drift.items():
        for metric, value in metrics.items():
            if value is not None and value == value:
                drift_gauge.set(float(value), {"monitor": monitor, "endpoint": endpoint, "feature": feature, "metric": metric})
                sent += 1
    for metric, value in (fairness or {}).items():
        if value is not None and value == value:
            fairness_gauge.set(float(value), {"monitor": monitor, "endpoint": endpoint, "metric": metric})
            sent += 1
    return sent
