"""The Azure scoring path's custom metrics, read back from an in-process OpenTelemetry reader."""
from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from specops.serving import azure_telemetry as telemetry


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    """metric name -> its data points (attributes and value) from one collection."""
    found: dict[str, list] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_requests_are_timed_and_counted_per_deployment_and_result(provider, reader):
    blue = telemetry.ScoringTelemetry("blue", "credit-scoring", meter_provider=provider)
    green = telemetry.ScoringTelemetry("green", "credit-scoring", meter_provider=provider)
    blue.record_request(12.0)
    blue.record_request(30.0)
    green.record_request(250.0, status=500)
    with pytest.raises(ValueError), green.request():
        raise ValueError("the model failed")
    with blue.request():
        pass
    got = points(reader)
    latency = {(p.attributes["deployment"], p.attributes["result"]): p for p in got[telemetry.LATENCY]}
    assert latency["blue", "success"].count == 3 and latency["blue", "success"].max == 30.0
    assert latency["green", "server_error"].count == 2 and latency["green", "server_error"].min >= 0
    counts = {(p.attributes["deployment"], p.attributes["result"]): p.value for p in got[telemetry.REQUESTS]}
    assert counts == {("blue", "success"): 3, ("green", "server_error"): 2}
    assert all(p.attributes["endpoint"] == "credit-scoring" for p in got[telemetry.REQUESTS])


def test_predictions_are_a_distribution_or_class_counts(provider, reader):
    scoring = telemetry.ScoringTelemetry("blue", "credit-scoring", meter_provider=provider)
    scoring.record_predictions([0.2, 0.9, 0.4])
    scoring.record_predictions(["approve", "deny", "approve", True])
    got = points(reader)
    (scores,) = got[telemetry.PREDICTION]
    assert scores.count == 3 and scores.sum == pytest.approx(1.5) and scores.max == 0.9
    classes = {p.attributes["prediction"]: p.value for p in got[telemetry.PREDICTION_CLASS]}
    assert classes == {"approve": 2, "deny": 1, "True": 1}


def test_monitor_values_are_gauges_per_feature_and_metric(provider, reader):
    sent = telemetry.emit_monitor_values("credit-drift", "credit-scoring",
                                         {"income": {"normalized_wasserstein_distance": 0.31, "psi": float("nan")},
                                          "gender": {"jensen_shannon_distance": 0.02}},
                                         {"parity_diff": 0.05}, meter_provider=provider)
    assert sent == 3  # the NaN is not sent
    got = points(reader)
    drift = {(p.attributes["feature"], p.attributes["metric"]): p.value for p in got[telemetry.DRIFT]}
    assert drift == {("income", "normalized_wasserstein_distance"): 0.31, ("gender", "jensen_shannon_distance"): 0.02}
    (parity,) = got[telemetry.FAIRNESS]
    assert parity.value == 0.05 and parity.attributes == {"monitor": "credit-drift", "endpoint": "credit-scoring",
                                                         "metric": "parity_diff"}


def test_without_a_connection_string_nothing_is_sent_and_a_line_says_so(monkeypatch, caplog):
    monkeypatch.delenv(telemetry.CONNECTION_ENV, raising=False)
    monkeypatch.delenv(telemetry.AML_KEY_ENV, raising=False)
    monkeypatch.setattr(telemetry, "_configured", None)
    with caplog.at_level(logging.INFO, logger=telemetry.__name__):
        scoring = telemetry.ScoringTelemetry("blue")
        scoring.record_request(5.0)
        scoring.record_predictions([1])
        with scoring.request():
            pass
        assert telemetry.emit_monitor_values("m", "e", {"income": {"psi": 0.1}}) == 0
    assert not scoring.enabled
    assert f"{telemetry.CONNECTION_ENV} is not set" in caplog.text


def test_a_connection_string_configures_azure_monitor_once(monkeypatch):
    calls = []
    monkeypatch.setenv(telemetry.CONNECTION_ENV, "InstrumentationKey=00000000-0000-0000-0000-000000000000")
    monkeypatch.setattr(telemetry, "_configured", None)
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: calls.append(kw))
    first, second = telemetry.azure_meter_provider(), telemetry.azure_meter_provider()
    assert first is second is not None
    assert calls == [{"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000000"}]
    monkeypatch.setattr(telemetry, "_configured", None)


def test_azure_mls_instrumentation_key_is_used_when_no_connection_string_is_set(monkeypatch):
    monkeypatch.delenv(telemetry.CONNECTION_ENV, raising=False)
    monkeypatch.setenv(telemetry.AML_KEY_ENV, "11111111-1111-1111-1111-111111111111")
    assert telemetry.connection_string() == "InstrumentationKey=11111111-1111-1111-1111-111111111111"
    monkeypatch.setenv(telemetry.CONNECTION_ENV, "InstrumentationKey=x;IngestionEndpoint=https://example.invalid/")
    assert telemetry.connection_string() == "InstrumentationKey=x;IngestionEndpoint=https://example.invalid/"


def test_a_monitor_run_sends_its_drift_and_fairness(provider, reader, monkeypatch):
    from datetime import UTC, datetime

    from specops.monitoring import runner
    from specops.monitoring.drift import DriftReport, FeatureDrift
    from specops.spec.signals import AZUREML, SignalResult

    monkeypatch.setattr(telemetry, "azure_meter_provider", lambda: provider)
    result = runner.MonitorResult("credit-drift", "credit-scoring", "drift", datetime(2027, 1, 1, tzinfo=UTC),
                                  datetime(2027, 1, 2, tzinfo=UTC), 500, None)
    result.drift = DriftReport(4000, 500, AZUREML, [FeatureDrift("income", "numerical", {"normalized_wasserstein_distance": 0.3}, {}, [])])
    result.signals = [SignalResult("fairness", "ok", {"demographic_parity_difference": 0.04})]
    assert runner.send_to_app_insights(result) == 2
    got = points(reader)
    assert [p.value for p in got[telemetry.DRIFT]] == [0.3] and [p.value for p in got[telemetry.FAIRNESS]] == [0.04]
