"""A fake Azure ML workspace at the azure-core HTTP transport, and a static token credential.

It answers the ARM REST calls MLClient makes the way the service does: 404
for what is missing, long-running operations through Azure-AsyncOperation
(create) and Location (delete) polling, 409 for a changed immutable asset
version, and injected faults (429 with Retry-After, 500). It also answers the
Azure Monitor metrics route of an online endpoint from canned per-deployment
series (requests, errors, p95 per minute). Every request is recorded; any
request to another host fails the test; retry waits are recorded, not slept.
"""
from __future__ import annotations

import base64
import itertools
import uuid
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.core.pipeline._tools import is_rest
from azure.core.rest._requests_basic import RestRequestsTransportResponse

HOST = "management.azure.com"
# Azure ML registries: discovered through the cloud's discovery host, then served (here) by the same fake host.
DISCOVERY_HOST = "eastus.api.azureml.ms"
DISCOVERY = re.compile(r"^/registrymanagement/v1\.0/registries/(?P<registry>[^/]+)/discovery$")
REGISTRY = re.compile(r"^/mferp/managementfrontend/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                      r"Microsoft\.MachineLearningServices/registries/(?P<registry>[^/]+)(?P<path>/.*)?$", re.IGNORECASE)
SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE = "00000000-0000-0000-0000-000000000000", "rg-test", "ws-test"


def workspace_prefix(workspace: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}")


PREFIX = workspace_prefix(WORKSPACE)
WORKSPACE_IN_PATH = re.compile(r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<name>[^/]+)", re.IGNORECASE)
# Resources Azure ML creates through long-running operations (the rest answer PUT at once).
LONG_RUNNING = re.compile(r"/(onlineEndpoints|batchEndpoints|schedules)/[^/]+(/deployments/[^/]+)?$", re.IGNORECASE)
OPERATION = "/operations/"
ONLINE_DEPLOYMENT = re.compile(r"/onlineEndpoints/[^/]+/deployments/[^/]+$", re.IGNORECASE)
CODE_VERSIONS = re.compile(r"^/codes/[^/]+/versions$", re.IGNORECASE)
ONLINE_ENDPOINT = re.compile(r"^/onlineEndpoints/[^/]+$", re.IGNORECASE)
JOB = re.compile(r"^/jobs/[^/]+$", re.IGNORECASE)
METRICS = re.compile(r"^/onlineEndpoints/(?P<endpoint>[^/]+)/providers/Microsoft\.Insights/metrics$", re.IGNORECASE)
DEPLOYMENT_FILTER = re.compile(r"deployment eq '(?P<name>[^']+)'")


class StaticTokenCredential:
    """A credential that never asks anyone: an unsigned JWT for the scope asked for.

    A JWT because the SDK reads the audience of its token before submitting a job.
    """

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        audience = scopes[0].removesuffix("/.default") if scopes else HOST
        parts = [{"alg": "none", "typ": "JWT"}, {"aud": audience, "tid": "fake-tenant", "exp": 4_102_444_800}]
        token = ".".join(base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in parts) + "."
        return AccessToken(token, 4_102_444_800)  # year 2100


@dataclass
class Fault:
    """Answer `times` matching requests with `status` instead of the normal answer."""

    method: str
    path: str  # regex searched in the request path (workspace prefix removed)
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Series:
    """What one deployment answers each minute: requests, how many of them failed (with which code), their p95."""

    requests: int
    errors: int = 0
    p95_ms: float = 50.0
    error_code: str = "500"


REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict",
           429: "Too Many Requests", 500: "Internal Server Error"}


def FakeResponse(request: Any, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """A response exactly as azure-core's requests transport builds one, from a canned requests.Response."""
    raw = requests.Response()
    raw.status_code, raw.reason, raw.url = status, REASONS.get(status, ""), request.url
    raw.headers.update({"Content-Type": "application/json", **(headers or {})})
    raw._content = b"" if body is None else json.dumps(body).encode()
    raw._content_consumed = True
    if is_rest(request):
        return RestRequestsTransportResponse(request=request, internal_response=raw, block_size=4096)
    return RequestsTransportResponse(request, raw, 4096)


# specs/project.yaml's prod promotion.registry: the fixtures applying the example make it, as its infra does.
EXAMPLE_REGISTRY = "credit-risk-registry"


class InMemoryTransport(HttpTransport):
    """An azure-core transport with no connection to open or close: the fakes answer in memory."""

    def __enter__(self) -> InMemoryTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeAzureML(InMemoryTransport):
    def __init__(self, workspace: str = WORKSPACE, registries: tuple[str, ...] = ()) -> None:
        self.workspace, self.prefix = workspace, workspace_prefix(workspace)
        self.guid = str(uuid.uuid5(uuid.NAMESPACE_URL, workspace))
        self.peers: list[FakeAzureML] = [self]  # the workspaces of one FakeCloud (where a registry import looks)
        self.store: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path without the workspace prefix)
        self.bodies: list[tuple[str, dict[str, Any]]] = []  # (path, body) of every PUT
        self.hosts: set[str] = set()
        self.faults: list[Fault] = []
        self.series: dict[str, Series] = {}  # deployment -> its live traffic, for the metrics route
        self.timeline: list[str] = []  # what happened to the endpoints: traffic set, metrics read
        self.retry_sleeps: list[float] = []  # what azure-core's retry policy asked to wait
        self._operations = itertools.count(1)
        # What a submitted job's run ends with (status), given its name: none set, jobs stay NotStarted.
        self.run_job: Callable[[str], str] | None = None
        # Azure ML registries (name -> versions by "models/<name>/versions/<v>") and the workspace's own id.
        self.registries: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in registries}
        self._bodiless: set[str] = set()  # operations whose end has no body

    # -- what tests read ---------------------------------------------------------
    def calls(self) -> list[str]:
        """'METHOD path' for each request, operation polling left out."""
        return [f"{m} {p}" for m, p in self.requests if OPERATION not in p]

    # -- HttpTransport -------------------------------------------------------------
    def sleep(self, duration: float) -> None:
        """azure-core's RetryPolicy waits through the transport: recorded, so no test waits for Retry-After."""
        self.retry_sleeps.append(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        url = urlsplit(request.url)
        self.hosts.add(url.netloc)
        if url.netloc == DISCOVERY_HOST and DISCOVERY.match(url.path):
            self.requests.append((request.method, url.path))
            registry = DISCOVERY.match(url.path)["registry"]
            if registry not in self.registries:  # made by the infra, or not at all
                return FakeResponse(request, 404, _error(404, url.path))
            return FakeResponse(request, 200, self._discovery(registry))
        if url.netloc != HOST:
            raise AssertionError(f"request to a real host left the fake: {request.method} {request.url}")
        registry = REGISTRY.match(url.path)
        if registry is not None:
            recorded = f"registry:{registry['registry']}{registry['path'] or ''}"
            self.requests.append((request.method, recorded))
            fault = self._fault(request.method, recorded)
            if fault is not None:
                return FakeResponse(request, fault.status, _error(fault.status, recorded), fault.headers)
            return self._registry(request, registry["registry"], (registry["path"] or "/").strip("/"))
        path = url.path.removeprefix(self.prefix) or "/"
        self.requests.append((request.method, path))
        fault = self._fault(request.method, path)
        if fault is not None:
            return FakeResponse(request, fault.status, _error(fault.status, path), fault.headers)
        handler = getattr(self, f"_{request.method.lower()}")
        return handler(request, url.path, path)

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and re.search(fault.path, path):
                fault.times -= 1
                return fault
        return None

    # -- the service ---------------------------------------------------------------
    def _get(self, request: Any, full: str, path: str) -> Any:
        if OPERATION in path:
            return FakeResponse(request, 200, None if full in self._bodiless else {"status": "Succeeded"})
        if path == "/":
            return FakeResponse(request, 200, self._workspace())
        if METRICS.search(path):
            return FakeResponse(request, 200, self._metrics(METRICS.search(path)["endpoint"], urlsplit(request.url).query))
        if CODE_VERSIONS.search(path):
            return FakeResponse(request, 200, {"value": [self._code_snapshot(full, path)]})
        if len(path.strip("/").split("/")) % 2:  # /type/name/.../type: a collection
            found = self._list(path)
            schedule = parse_qs(urlsplit(request.url).query).get("scheduleId")
            if schedule:  # the runs a schedule made
                found = [body for body in found if body["properties"].get("scheduleId") == schedule[0]]
            return FakeResponse(request, 200, {"value": found})
        body = self.store.get(path.lower())
        return FakeResponse(request, 200, body) if body is not None else FakeResponse(request, 404, _error(404, path))

    def _put(self, request: Any, full: str, path: str) -> Any:
        sent = json.loads(request.body or b"{}")
        self.bodies.append((path, sent))
        existing = self.store.get(path.lower())
        if "/versions/" in path and existing is not None and _immutable(existing) != _immutable(_stored(full, sent)):
            return FakeResponse(request, 409, _error(409, path))
        body = _stored(full, sent)
        if "/versions/" in path and existing is not None:  # an update of what a version may change
            body = json.loads(json.dumps(existing))
            body["properties"].update({k: v for k, v in sent.get("properties", {}).items() if k in MUTABLE})
        if JOB.search(path):
            body["properties"]["status"] = self.run_job(body["name"]) if self.run_job else "NotStarted"
        self.store[path.lower()] = body
        if ONLINE_ENDPOINT.search(path):
            self.timeline.append(f"traffic {body['properties'].get('traffic')}")
        if LONG_RUNNING.search(path):
            return FakeResponse(request, 201, body, self._operation_header("Azure-AsyncOperation"))
        return FakeResponse(request, 200 if existing else 201, body)

    def _delete(self, request: Any, full: str, path: str) -> Any:
        key = path.lower()
        for child in [k for k in self.store if k.startswith(f"{key}/")]:
            del self.store[child]  # an endpoint goes with its deployments
        if self.store.pop(key, None) is None:
            return FakeResponse(request, 204)  # ARM: deleting what is not there succeeds
        return FakeResponse(request, 202, None, self._operation_header("Location"))

    def _post(self, request: Any, full: str, path: str) -> Any:
        return FakeResponse(request, 200, {})

    def _list(self, path: str) -> list[dict[str, Any]]:
        """A collection's items; versions newest first (what `@latest` resolves to)."""
        prefix = f"{path.lower()}/"
        found = [body for key, body in self.store.items() if key.startswith(prefix) and "/" not in key[len(prefix):]]
        return sorted(found, key=lambda body: int(body["name"]) if body["name"].isdigit() else 0, reverse=True)

    def _metrics(self, endpoint: str, query: str) -> dict[str, Any]:
        """Azure Monitor's answer for one metric of one deployment: a point per minute of the timespan.

        As the service does, the last minute is not ingested yet (a timeStamp without a value), and
        RequestsPerMinute split by `statusCode eq '*'` comes as one series per status code."""
        params = {key: values[0] for key, values in parse_qs(query).items()}
        metric, where = params["metricnames"], params["$filter"]
        deployment = DEPLOYMENT_FILTER.search(where)["name"]
        self.timeline.append(f"metrics {deployment} {metric}")
        start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in params["timespan"].split("/"))
        minutes = [start + timedelta(minutes=i) for i in range(int((end - start) / timedelta(minutes=1)))]
        series = self.series.get(deployment)
        if series is None:
            return _metric_answer(endpoint, metric, [])
        if metric == "RequestsPerMinute":
            codes = [("200", series.requests - series.errors), (series.error_code, series.errors)]
            timeseries = [_timeseries(minutes, value, {"statuscode": code}) for code, value in codes if value]
        else:
            timeseries = [_timeseries(minutes, series.p95_ms, {})]
        return _metric_answer(endpoint, metric, timeseries)

    def _workspace(self) -> dict[str, Any]:
        return _workspace_body(self.prefix, self.workspace, self.guid)

    # -- registries ------------------------------------------------------------------
    def _discovery(self, registry: str) -> dict[str, Any]:
        return {"registryName": registry, "primaryRegion": "westeurope", "regions": ["westeurope"],
                "primaryRegionResourceProviderUri": f"https://{HOST}/", "subscriptionId": SUBSCRIPTION,
                "resourceGroup": RESOURCE_GROUP}

    def _registry(self, request: Any, registry: str, path: str) -> Any:
        """A registry's models: versions listed newest first, got by name and version, and copied in from a
        workspace by `import` (what `models.share` sends), as a long-running operation."""
        assets = self.registries[registry]
        if request.method == "POST" and path == "import":
            sent = json.loads(request.body or b"{}")["properties"]
            source = re.search(r"/workspaces/(?P<guid>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
                               sent["sourceAssetId"])
            workspace = next((w for w in self.peers if source is not None and w.guid == source["guid"]), None)
            if workspace is None or f"/models/{source['name']}/versions/{source['version']}".lower() not in workspace.store:
                return FakeResponse(request, 400, _error(400, f"no such workspace model: {sent['sourceAssetId']}"))
            key = f"models/{sent['destinationName']}/versions/{sent['destinationVersion']}"
            assets[key] = {"id": f"azureml://registries/{registry}/{key}", "name": sent["destinationVersion"],
                           "properties": {"modelType": "mlflow_model", "tags": {}, "properties": {}, "flavors": {},
                                          "modelUri": f"azureml://registries/{registry}/{key}",
                                          "sourceAssetId": sent["sourceAssetId"]}}
            header = self._operation_header("Location")
            self._bodiless.add(urlsplit(header["Location"]).path)  # an import ends with no body to read
            return FakeResponse(request, 202, None, header)
        if request.method == "PUT" and path in assets:  # what a version may change: archived or not, tags, stage
            sent = json.loads(request.body or b"{}").get("properties", {})
            assets[path]["properties"].update({k: v for k, v in sent.items() if k in MUTABLE})
            return FakeResponse(request, 200, assets[path])
        if request.method != "GET":
            return FakeResponse(request, 405, _error(405, path))
        if path in assets:
            return FakeResponse(request, 200, assets[path])
        if path.endswith("/versions"):
            archived_too = parse_qs(urlsplit(request.url).query).get("listViewType") == ["All"]
            found = [body for key, body in assets.items() if key.startswith(f"{path}/")
                     and (archived_too or not body["properties"].get("isArchived"))]
            return FakeResponse(request, 200, {"value": sorted(found, key=lambda b: int(b["name"]), reverse=True)})
        if re.fullmatch(r"models/[^/]+", path) and any(key.startswith(f"{path}/") for key in assets):
            return FakeResponse(request, 200, {"id": f"azureml://registries/{registry}/{path}", "name": path.split("/")[1],
                                               "properties": {}})
        return FakeResponse(request, 404, _error(404, path))

    def seed_monitor_run(self, schedule: str, name: str, breached_signal: str | None = None,
                         created: datetime | None = None) -> None:
        """A run the workspace made of a monitor schedule (now, unless `created`); one that found `breached_signal`
        over its thresholds failed and carries the tag Azure ML's monitoring components put on it."""
        tags = {} if breached_signal is None else {"azureml_modelmonitor_threshold_breached": (
            f"The signal '{breached_signal}' has failed due to one or more features violating metric thresholds.\n"
            "The feature names and their corresponding computed metric values violating the threshold are \n[...]")}
        path = f"/jobs/{name}"
        when = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.store[path.lower()] = _stored(f"{self.prefix}{path}", {"systemData": {"createdAt": when}, "properties": {
            "jobType": "Pipeline", "status": "Failed" if breached_signal else "Completed", "tags": tags,
            "scheduleId": schedule, "jobs": {}, "inputs": {}, "outputs": {}, "settings": {}}})

    def seed_model(self, name: str, version: int) -> None:
        """A model version an earlier pipeline run registered."""
        path = f"/models/{name}/versions/{version}"
        self.store[path.lower()] = _stored(f"{self.prefix}{path}", {"properties": {"modelType": "mlflow_model", "flavors": {},
                                                                              "modelUri": "azureml://fake/model"}})

    def _code_snapshot(self, full: str, path: str) -> dict[str, Any]:
        """The code snapshot asked for by content hash, as already uploaded.

        Uploads go to the workspace's storage account through azure-storage-blob, which
        takes no azure-core transport from MLClient: the fake workspace holds every snapshot,
        so the SDK reuses it and never uploads (see docs/azureml.md: not verifiable offline).
        """
        body = _stored(f"{full}/1", {"properties": {"codeUri": "https://fake.blob.core.windows.net/snapshot",
                                                    "isAnonymous": True}})
        self.store.setdefault(f"{path}/1".lower(), body)
        return body

    def _operation_header(self, name: str) -> dict[str, str]:
        # Retry-After 0: poll at once (the SDK would otherwise wait the service's usual seconds).
        url = f"https://{HOST}{self.prefix}{OPERATION}{next(self._operations)}?api-version=2024-01-01-preview"
        return {name: url, "Retry-After": "0"}


MUTABLE = frozenset({"tags", "description", "isArchived", "stage"})  # what `az ml model update` may change on a version


def _immutable(body: dict[str, Any]) -> dict[str, Any]:
    """What an asset version may not change; empty values left out (the SDK sends `properties: {}` and
    `isAnonymous: false` where the service holds none)."""
    return {k: v for k, v in body["properties"].items() if k not in MUTABLE and v not in ({}, [], None, False)}


def _stored(full: str, sent: dict[str, Any]) -> dict[str, Any]:
    """What the service keeps and returns: the body sent, plus id, name and a terminal provisioning state."""
    body = json.loads(json.dumps(sent))
    body["id"], body["name"] = full, full.rstrip("/").rsplit("/", 1)[-1]
    properties = body.setdefault("properties", {})
    properties.setdefault("provisioningState", "Succeeded")
    if ONLINE_DEPLOYMENT.search(full):
        properties.setdefault("scaleSettings", {"scaleType": "Default"})  # the service's default
        for collection in (properties.get("dataCollector") or {}).get("collections", {}).values():
            collection["dataCollectionMode"] = collection["dataCollectionMode"].capitalize()  # it answers "Enabled"
    return body


def _timeseries(minutes: list[datetime], value: float, dimensions: dict[str, str]) -> dict[str, Any]:
    data = [{"timeStamp": m.strftime("%Y-%m-%dT%H:%M:%SZ"), "average": value} for m in minutes]
    if data:
        del data[-1]["average"]  # the newest minute is not ingested yet
    return {"metadatavalues": [{"name": {"value": k, "localizedValue": k}, "value": v} for k, v in dimensions.items()],
            "data": data}


def _metric_answer(endpoint: str, metric: str, timeseries: list[dict[str, Any]]) -> dict[str, Any]:
    unit = "Count" if metric == "RequestsPerMinute" else "Milliseconds"
    return {"cost": 0, "interval": "PT1M", "namespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "value": [{"id": f"{PREFIX}/onlineEndpoints/{endpoint}/providers/Microsoft.Insights/metrics/{metric}",
                       "type": "Microsoft.Insights/metrics", "name": {"value": metric, "localizedValue": metric},
                       "unit": unit, "errorCode": "Success", "timeseries": timeseries}]}


def _workspace_body(prefix: str, name: str, guid: str) -> dict[str, Any]:
    return {"id": prefix, "name": name, "location": "westeurope", "kind": "Default",
            "properties": {"workspaceId": guid, "discoveryUrl": f"https://{HOST}/discovery", "mlFlowTrackingUri": "azureml://fake"}}


def _error(status: int, path: str) -> dict[str, Any]:
    codes = {404: "ResourceNotFound", 409: "Conflict", 429: "TooManyRequests", 500: "InternalServerError"}
    return {"error": {"code": codes.get(status, "Error"), "message": f"{codes.get(status, 'Error')}: {path}"}}


class FakeCloud(InMemoryTransport):
    """Several fake workspaces that share registries: a request goes to the workspace its URL names (the first
    when it names none: registry discovery and registry calls, answered from the registries all of them share)."""

    def __init__(self, *workspaces: FakeAzureML) -> None:
        self.workspaces = {w.workspace: w for w in workspaces}
        self.registries: dict[str, dict[str, dict[str, Any]]] = {}
        for w in workspaces:
            w.peers, w.registries = list(workspaces), self.registries

    def sleep(self, duration: float) -> None:
        next(iter(self.workspaces.values())).sleep(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        named = WORKSPACE_IN_PATH.search(urlsplit(request.url).path)
        workspace = self.workspaces[named["name"]] if named else next(iter(self.workspaces.values()))
        return workspace.send(request, **kwargs)
