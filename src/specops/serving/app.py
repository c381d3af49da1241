"""One worker's HTTP application: the Azure ML online-endpoint protocol on aiohttp.

Routes: POST /score, POST /feedback (both need `Authorization: Bearer <key>`),
GET /swagger.json (needs the key, as on Azure ML), and the unauthenticated
probes and scrape target GET /, /liveness, /readiness, /metrics.

Whatever a handler fails on becomes a JSON 500 naming the request id, never a
traceback in the answer; the log gets one line.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Awaitable, Callable

from aiohttp import web

from specops.core.files import atomic_write
from specops.serving.batching import MicroBatcher
from specops.serving.config import DeploymentConfig, ServingConfig, first_line, worker_status_file
from specops.serving.inference_log import InferenceLog, Retention
from specops.serving.keys import KeyChecker
from specops.serving.metrics import CONTENT_TYPE, MAX_DEPLOYMENTS, Metrics
from specops.serving.schema import BadRequest, DuplicateKey, InputSchema, Unprocessable, loads_strict, value_problem
from specops.spec.kinds import Column
from specops.serving.scorer import Scorer
from specops.serving.traffic import traffic_file, watch_file, watch_traffic

DEPLOYMENT_HEADER = "azureml-model-deployment"
REQUEST_ID_HEADER = "x-request-id"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("specops.serving")


@dataclass
class Deployment:
    """A deployment as one worker serves it: loaded, or not ready with the reason."""

    config: DeploymentConfig
    scorer: Scorer | None = None
    batcher: MicroBatcher | None = None
    in_flight: int = 0
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    @property
    def schema(self) -> InputSchema:
        return self.loaded[0].schema

    @property
    def loaded(self) -> tuple[Scorer, MicroBatcher]:
        """The model and its batcher; requests are routed to ready deployments only."""
        if self.scorer is None or self.batcher is None:
            raise RuntimeError(f"deployment {self.config.name} is not ready: {self.error}")
        return self.scorer, self.batcher

    def status(self) -> dict[str, Any]:
        return {"ready": self.ready, "model": self.config.model, "version": self.config.version, "error": self.error}


@dataclass
class LiveEndpoint:
    config: ServingConfig
    keys: KeyChecker
    metrics: Metrics
    log: InferenceLog
    deployments: dict[str, Deployment] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)  # live-traffic deployments that are ready...
    _weights: list[float] = field(default_factory=list)  # ...and their cumulative shares
    worker: int = 0
    _mirror: dict[str, int] = field(default_factory=dict)
    _traffic: tuple[dict[str, int], dict[str, int]] = ({}, {})  # the weights last published, re-applied after a reload
    _watcher: asyncio.Task | None = None
    _config_watcher: asyncio.Task | None = None
    file_faults: dict[str, str | None] = field(default_factory=dict)  # watched file -> why it cannot be used, or None

    def label_column(self) -> Column | None:
        """The declared target column of the data the deployments score (None while none is loaded)."""
        for deployment in self.deployments.values():
            if deployment.scorer is not None:
                dataset = deployment.scorer.dataset
                return dataset.columns.get(dataset.target)
        return None

    def faults(self) -> dict[str, str | None]:
        """Each file the worker follows -> why its last change could not be used (None: in force)."""
        return {**self.file_faults, self.keys.path.name: self.keys.fault}

    def _fault(self, name: str, problem: str | None) -> None:
        self.file_faults[name] = problem

    def start(self, config_path: Path | None = None) -> None:
        """Load every deployment (a failure makes that one unready), then follow the live traffic weights and,
        given the config file, reloads of it."""
        for config in self.config.deployments:
            self.deployments[config.name] = self._started(config, _load_scorer(config))
        self.set_traffic(self.config.traffic, self.config.mirror_traffic)
        self.metrics.faults = self.faults
        self.file_faults = {traffic_file(self.config.state_dir).name: None, **({config_path.name: None} if config_path else {})}
        loop = asyncio.get_running_loop()
        self._watcher = loop.create_task(watch_traffic(self.config.state_dir, self.set_traffic, self._fault))
        if config_path is not None:
            self._config_watcher = loop.create_task(watch_file(config_path, self.reload, self._fault))

    def _started(self, config: DeploymentConfig, loaded: Scorer | str | None) -> Deployment:
        """A Deployment from a load's outcome (a scorer, or why there is none); its batcher runs on this loop."""
        deployment = Deployment(config, error=loaded if isinstance(loaded, str) else config.error)
        if isinstance(loaded, Scorer):
            deployment.scorer = loaded
            deployment.batcher = MicroBatcher(loaded.score, self.config.max_batch_size, self.config.max_wait_ms)
            deployment.batcher.start()
        return deployment

    async def reload(self, path: Path) -> None:
        """Serve a new config without a restart: load what changed beside the running models, then swap.

        Models load in a thread, so requests keep being answered; a deployment whose version did not
        change keeps its loaded model. The worker then reports the revision it serves (status file).
        """
        config = ServingConfig.load(path)
        if config.revision <= self.config.revision:
            return
        loop, deployments = asyncio.get_running_loop(), {}
        for new in config.deployments:
            current = self.deployments.get(new.name)
            if current is not None and (current.config.version, current.config.model_path, current.config.error) == \
                    (new.version, new.model_path, new.error):
                deployments[new.name] = current
            else:
                deployments[new.name] = self._started(new, await loop.run_in_executor(None, _load_scorer, new))
        self.metrics.set_slots(config.slots)
        self.config, self.deployments = config, deployments
        self.set_traffic(*self._traffic)
        self.report_status()

    def report_status(self) -> None:
        """What this worker serves, for whoever waits on a reload (serving.daemon)."""
        status = {"revision": self.config.revision, "deployments": {n: d.status() for n, d in self.deployments.items()}}
        atomic_write(worker_status_file(self.config.state_dir, self.worker), json.dumps(status))

    def set_traffic(self, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        """Share live traffic among the ready deployments; a broken one's share goes to the rest in proportion."""
        self._traffic = (dict(traffic), dict(mirror))
        live = [(name, share) for name, share in traffic.items()
                if share > 0 and name in self.deployments and self.deployments[name].ready]
        total = sum(share for _, share in live)
        names, bounds, running = [], [], 0.0
        for name, share in live:
            running += share / total
            names.append(name)
            bounds.append(running)
        self._names, self._weights, self._mirror = names, bounds, dict(mirror)

    @property
    def ready(self) -> bool:
        return bool(self._names)

    def main(self) -> Deployment | None:
        """The ready deployment with the largest share of live traffic."""
        shares = [bound - previous for previous, bound in zip([0.0, *self._weights], self._weights)]
        return self.deployments[self._names[shares.index(max(shares))]] if self._names else None

    def route(self) -> Deployment | None:
        """A deployment drawn by traffic weight among the ready ones; a broken one's share goes to the rest."""
        draw = random.random()
        for name, bound in zip(self._names, self._weights):
            if draw < bound:
                return self.deployments[name]
        return self.deployments[self._names[-1]] if self._names else None

    def mirror(self) -> Deployment | None:
        for name, share in self._mirror.items():
            deployment = self.deployments.get(name)
            if deployment is not None and deployment.ready and random.random() * 100 < share:
                return deployment
        return None


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A handler's uncaught error: a JSON 500 with a request id to quote, one log line, no traceback anywhere."""
    try:
        return await handler(request)
    except web.HTTPException:  # aiohttp's own answers (413, 405, ...)
        raise
    except Exception as exc:
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        log.error("%s %s failed (request %s): %s: %s", request.method, request.path, request_id, type(exc).__name__,
                  first_line(exc)[:200])
        return web.json_response({"error": "internal error", "request_id": request_id}, status=500,
                                 headers={REQUEST_ID_HEADER: request_id})


def build_app(endpoint: LiveEndpoint) -> web.Application:
    app = web.Application(client_max_size=endpoint.config.max_request_bytes, middlewares=[json_errors])
    app["endpoint"] = endpoint
    app.router.add_post("/score", score)
    app.router.add_post("/feedback", feedback)
    app.router.add_get("/swagger.json", swagger)
    app.router.add_get("/", liveness)
    app.router.add_get("/liveness", liveness)
    app.router.add_get("/readiness", readiness)
    app.router.add_get("/metrics", metrics)
    return app


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def authenticated(handler: Handler) -> Handler:
    """Answer 401 unless the request carries one of the endpoint's keys."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        if not request.app["endpoint"].keys.accepts(request.headers.get("Authorization")):
            return web.json_response({"error": "missing or wrong key: send Authorization: Bearer <endpoint key>"},
                                     status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return checked


def _target(endpoint: LiveEndpoint, request: web.Request) -> Deployment | web.Response:
    """The deployment named by the header, else one drawn by traffic; an error response if none can serve."""
    name = request.headers.get(DEPLOYMENT_HEADER)
    if name is None:
        deployment = endpoint.route()
        return deployment or _error(503, "no deployment is ready to take traffic", deployments=_statuses(endpoint))
    deployment = endpoint.deployments.get(name)
    if deployment is None:
        return _error(404, f"no deployment named {name!r} (deployments: {', '.join(endpoint.deployments)})")
    return deployment if deployment.ready else _error(503, f"deployment {name!r} is not ready: {deployment.error}")


@authenticated
async def score(request: web.Request) -> web.Response:
    start = time.perf_counter()
    endpoint: LiveEndpoint = request.app["endpoint"]
    body = await request.read()  # aiohttp answers 413 itself past client_max_size
    deployment = _target(endpoint, request)
    if isinstance(deployment, web.Response):
        return deployment
    request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
    status, payload, rows = await _predict(deployment, body)
    seconds = time.perf_counter() - start
    endpoint.metrics.observe(deployment.config.name, status, seconds)
    headers = {REQUEST_ID_HEADER: request_id, DEPLOYMENT_HEADER: deployment.config.name}
    if status != 200:
        return web.json_response(payload, status=status, headers=headers)
    _record(endpoint, deployment, request_id, rows, body, payload, seconds, shadow=False)
    # Only routed traffic is mirrored: a request naming its deployment is a deliberate test of that one.
    shadow = endpoint.mirror() if DEPLOYMENT_HEADER not in request.headers else None
    if shadow is not None and shadow.schema == deployment.schema:
        _shadow(endpoint, shadow, request_id, rows, body)
    return web.json_response(payload, headers=headers)


async def _predict(deployment: Deployment, body: bytes) -> tuple[int, Any, list]:
    """(status, JSON payload, parsed rows) for one request on one deployment."""
    config = deployment.config
    scorer, batcher = deployment.loaded
    if config.max_concurrent_requests is not None and deployment.in_flight >= config.max_concurrent_requests:
        return 429, {"error": f"deployment {config.name!r} has {deployment.in_flight} requests in flight "
                              f"(max_concurrent_requests_per_instance)"}, []
    try:
        rows = scorer.schema.parse(body)
    except BadRequest as exc:  # 400, or 422 for a value outside the declared domain
        return exc.status, exc.body(), []
    deployment.in_flight += 1
    try:
        predictions = await asyncio.wait_for(batcher.submit(rows), config.request_timeout_ms / 1000)
        return 200, predictions, rows
    except TimeoutError:
        return 408, {"error": f"no answer within request_timeout_ms={config.request_timeout_ms}"}, rows
    except Unprocessable as exc:  # a row the model cannot score: the request's fault (4xx), not the server's
        return 422, {**exc.body(), "error": f"deployment {config.name!r}: {exc.message}"}, rows
    except Exception as exc:  # the model failed on this batch: a 500 naming why, the server lives on
        return 500, {"error": f"deployment {config.name!r} failed to score: {exc}"}, rows
    finally:
        deployment.in_flight -= 1


def _shadow(endpoint: LiveEndpoint, shadow: Deployment, request_id: str, rows: list, body: bytes) -> None:
    """Score a copy on the mirror deployment; its answer is logged and counted, never returned."""
    start = time.perf_counter()

    def done(future: asyncio.Future) -> None:
        seconds = time.perf_counter() - start
        error = None if future.cancelled() else future.exception()
        failed = future.cancelled() or error is not None
        endpoint.metrics.observe(shadow.config.name, 422 if isinstance(error, Unprocessable) else 500 if failed else 200, seconds)
        if not failed:
            _record(endpoint, shadow, request_id, rows, body, future.result(), seconds, shadow=True)

    shadow.loaded[1].submit(rows).add_done_callback(done)


def _record(endpoint: LiveEndpoint, deployment: Deployment, request_id: str, rows: list, body: bytes, predictions: list,
            seconds: float, shadow: bool) -> None:
    if not InferenceLog.sampled(deployment.config.sampling_rate):
        return
    schema = deployment.schema
    flag = schema.out_of_range == "flag"
    now = time.time()
    endpoint.log.write_requests([
        {"time": now, "request_id": request_id, "row": i, "deployment": deployment.config.name,
         "model": deployment.config.model, "version": deployment.config.version, "shadow": shadow,
         "inputs": dict(zip(schema.columns, row)), "prediction": prediction, "latency_ms": round(seconds * 1000, 3),
         **({"sensitive": sensitive} if sensitive else {}), **({"flags": flags} if flag and (flags := schema.flags(row)) else {})}
        for i, (row, prediction, sensitive) in enumerate(zip(rows, predictions, schema.sensitive_values(body, len(rows))))
    ])


@authenticated
async def feedback(request: web.Request) -> web.Response:
    """Ground truth for logged requests: {"request_id": ..., "label": ...} or a list of them."""
    endpoint: LiveEndpoint = request.app["endpoint"]
    try:
        document = loads_strict(await request.read())
    except DuplicateKey as exc:
        return _error(400, f"key {exc.key!r} appears more than once in one object", field="body")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return _error(400, f"not valid JSON ({first_line(exc)[:200]})", field="body")
    items = document if isinstance(document, list) else [document]
    label = endpoint.label_column()
    for i, item in enumerate(items):
        where = f"[{i}]" if isinstance(document, list) else "body"
        if not isinstance(item, dict) or not isinstance(item.get("request_id"), str):
            return _error(400, "expected {\"request_id\": \"...\", \"label\": ...}", field=f"{where}.request_id")
        if "label" not in item:
            return _error(400, "field required", field=f"{where}.label")
        # The label is checked against the Dataset's declared target column: performance monitors compare it
        # with predictions, so a nested object or a NaN there would poison every report that reads it.
        problem = value_problem(label, item["label"]) if label is not None else None
        if problem:
            return _error(problem[0], problem[1], field=f"{where}.label")
    endpoint.log.write_feedback([{"request_id": item["request_id"], "label": item["label"]} for item in items])
    return web.json_response({"accepted": len(items)}, status=202)


@authenticated
async def swagger(request: web.Request) -> web.Response:
    endpoint: LiveEndpoint = request.app["endpoint"]
    deployment = _target(endpoint, request) if DEPLOYMENT_HEADER in request.headers else endpoint.main()
    if deployment is None:
        return _error(503, "no deployment is ready to take traffic", deployments=_statuses(endpoint))
    if isinstance(deployment, web.Response):
        return deployment
    scorer = deployment.loaded[0]
    spec = scorer.schema.openapi(endpoint.config.endpoint, list(endpoint.deployments), scorer.output_schema())
    return web.json_response(spec)


async def liveness(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readiness(request: web.Request) -> web.Response:
    endpoint: LiveEndpoint = request.app["endpoint"]
    faults = {name: problem for name, problem in endpoint.faults().items() if problem}
    return web.json_response({"ready": endpoint.ready, "deployments": _statuses(endpoint), **({"faults": faults} if faults else {})},
                             status=200 if endpoint.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    endpoint: LiveEndpoint = request.app["endpoint"]
    return web.Response(body=endpoint.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


def _statuses(endpoint: LiveEndpoint) -> dict[str, Any]:
    return {name: d.status() for name, d in endpoint.deployments.items()}


def make_endpoint(config: ServingConfig, worker: int, metrics_array) -> LiveEndpoint:
    state = Path(config.state_dir)
    slots = config.slots or [d.name for d in config.deployments]
    metrics = Metrics(metrics_array, slots, worker, capacity=MAX_DEPLOYMENTS)
    retention = Retention(config.log_rotate_bytes, config.log_max_bytes, config.log_retention_s)
    return LiveEndpoint(config, KeyChecker(state), metrics, InferenceLog(state, worker, retention), worker=worker)


def _load_scorer(config: DeploymentConfig) -> Scorer | str | None:
    """The deployment's scorer, or why it cannot serve (None: the config already says why)."""
    if config.error is not None:
        return None
    try:
        return Scorer(config)
    except Exception as exc:  # whatever broke the load, this deployment must get no traffic
        return f"cannot load model {config.model}: {first_line(exc)}"

