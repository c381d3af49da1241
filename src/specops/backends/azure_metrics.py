"""Live traffic of an Azure ML online endpoint, read from Azure Monitor, for canary analysis.

One small interface, `EndpointMetrics.window`: what one deployment answered
between two instants, as the local `Traffic` (requests, errors, p95 ms) that
`specops.rollout.analysis` judges. `AzureMonitorMetrics` implements it over the
Azure Monitor metrics REST API with azure-core alone (azure-monitor-query is
not a dependency): `GET {endpoint id}/providers/Microsoft.Insights/metrics`.

The platform metrics of `Microsoft.MachineLearningServices/workspaces/onlineEndpoints`
used here (Azure Monitor's supported-metrics reference; 1-minute grain, aggregation Average):

- `RequestsPerMinute`, dimensions `deployment`, `statusCode`, `statusCodeClass`,
  `modelStatusCode`: split by `statusCode`, each minute's value is that
  minute's count of answers with that code.
- `RequestLatency_P95` (ms), dimension `deployment`: each minute's p95.

Errors are what the local server counts as failed on the server side (5xx
and timeouts): Azure ML answers 408 when scoring exceeds `request_timeout_ms`
and 424 when the model container answers non-200, so both count with the 5xx;
429 (the deployment's `max_concurrent_requests_per_instance` reached) counts
too: a canary that throttles its share of the traffic fails those users.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from specops.errors import SpecopsError
from specops.rollout.metrics import Traffic

if TYPE_CHECKING:
    from azure.core import PipelineClient
    from azure.core.rest import HttpRequest, HttpResponse

ARM = "https://management.azure.com"
SCOPE = "https://management.azure.com/.default"
API_VERSION = "2023-10-01"
GRAIN = timedelta(minutes=1)  # the finest interval these metrics have
REQUESTS, P95 = "RequestsPerMinute", "RequestLatency_P95"
ERROR_CODES = frozenset({408, 424, 429})  # timeout, model error, throttled: Azure ML's 4xx for the deployment's fault


class EndpointMetrics(Protocol):
    def window(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> Traffic:
        """What `deployment` of online endpoint `endpoint` answered from `start` to `end` (UTC)."""


def workspace_id(subscription_id: str, resource_group: str, workspace: str) -> str:
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}")


class AzureMonitorMetrics:
    """`EndpointMetrics` over the Azure Monitor metrics REST API (ARM, the `MLClient` credential)."""

    def __init__(self, credential: Any, workspace: str, transport: Any = None, **retry: Any):
        """`workspace` is the workspace's ARM id; `transport` and `retry_*` options as MLClient takes them."""
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, RetryPolicy

        self.workspace = workspace
        # RetryPolicy retries 408/429/5xx and waits what a 429's Retry-After asks (through the transport's sleep).
        policies = [HeadersPolicy({"Accept": "application/json"}), RetryPolicy(**retry),
                    BearerTokenCredentialPolicy(credential, SCOPE)]
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(ARM, policies=policies, transport=transport)

    def window(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> Traffic:
        # Points are whole minutes: one begun before `start` would mix in traffic from before the window.
        start = _next_minute(start)
        if end - start < GRAIN:
            return Traffic(0, 0, None)
        resource = f"{self.workspace}/onlineEndpoints/{endpoint}"
        answers = self._series(resource, REQUESTS, f"deployment eq '{deployment}' and statusCode eq '*'", start, end)
        latency = self._series(resource, P95, f"deployment eq '{deployment}'", start, end)
        per_minute: dict[str, float] = {}
        errors = 0.0
        for status, points in answers:
            for stamp, count in points.items():
                per_minute[stamp] = per_minute.get(stamp, 0.0) + count
            if _is_error(status):
                errors += sum(points.values())
        p95 = weighted_p95(latency[0][1] if latency else {}, per_minute)
        return Traffic(round(sum(per_minute.values())), round(errors), p95)

    def _series(self, resource: str, metric: str, where: str, start: datetime,
                end: datetime) -> list[tuple[str, dict[str, float]]]:
        """Each time series of `metric` as (its statusCode, "" when unsplit; {minute: value}).

        Minutes without data are left out."""
        from azure.core.rest import HttpRequest

        params = {"api-version": API_VERSION, "metricnames": metric, "aggregation": "Average",
                  "interval": "PT1M", "timespan": f"{_iso(start)}/{_iso(end)}", "$filter": where}
        request = HttpRequest("GET", f"{ARM}{resource}/providers/Microsoft.Insights/metrics", params=params)
        what = f"Azure Monitor metric {metric} of {resource.rsplit('/', 1)[-1]} ({where})"
        body = self._send(request, what)
        found = []
        for item in body.get("value", []):
            if item.get("errorCode") not in (None, "Success"):
                raise SpecopsError(f"{what}: {item['errorCode']}: {item.get('errorMessage', '')}")
            found += [(_status(series), _points(series)) for series in item.get("timeseries", [])]
        return found

    def _send(self, request: Any, what: str) -> dict[str, Any]:
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        try:
            response = self._client.send_request(request)
            response.read()  # a transport may hand back the body unread; these answers are small
        except ClientAuthenticationError:
            raise SpecopsError(f"{what}: could not sign in to Azure: no credential found. In CI, log in with OIDC "
                               "(azure/login); on a workstation, run `az login` (see docs/ci-cd.md)") from None
        except AzureError as exc:  # the connection, after the retries
            raise SpecopsError(f"{what}: Azure Monitor could not be reached: {exc.message}") from exc
        if response.status_code in (401, 403):
            raise SpecopsError(f"{what}: Azure Monitor refused ({response.status_code}): {_message(response)}. The "
                               "identity applying needs metrics read on the endpoint (e.g. the Monitoring Reader role)")
        if response.status_code >= 400:
            raise SpecopsError(f"{what}: Azure Monitor answered {response.status_code}: {_message(response)}")
        return response.json()


def weighted_p95(p95s: dict[str, float], requests: dict[str, float]) -> float | None:
    """One p95 for the window from per-minute p95s, each minute weighted by its requests.

    Not the exact p95 of the window (Azure Monitor keeps no histogram), but a busy minute counts
    for what it served; minutes whose request counts are unknown weigh the same."""
    if not p95s:
        return None
    weights = {stamp: requests.get(stamp, 0.0) for stamp in p95s}
    if not sum(weights.values()):
        weights = dict.fromkeys(p95s, 1.0)
    return sum(p95s[s] * w for s, w in weights.items()) / sum(weights.values())


def _is_error(status: str) -> bool:
    return status.isdigit() and (status.startswith("5") or int(status) in ERROR_CODES)


def _status(series: dict[str, Any]) -> str:
    # The service answers dimension names in lower case ("statuscode"); compare without case.
    for meta in series.get("metadatavalues", []):
        if meta.get("name", {}).get("value", "").lower() == "statuscode":
            return str(meta.get("value", ""))
    return ""


def _points(series: dict[str, Any]) -> dict[str, float]:
    # A minute not yet ingested comes back with a timeStamp and no value: it is not a zero.
    return {point["timeStamp"]: float(point["average"]) for point in series.get("data", [])
            if point.get("average") is not None}


def _next_minute(instant: datetime) -> datetime:
    floor = instant.replace(second=0, microsecond=0)
    return floor if floor == instant else floor + GRAIN


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(response: Any) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text()[:200] or response.reason or ""
