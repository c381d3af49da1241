"""The stand-in for an Azure ML workspace's MLflow: a real `mlflow server`, behind a proxy that refuses what Azure refuses.

Azure ML workspaces are MLflow-compatible for tracking and the model registry, but not for all of it.
`REFUSALS` is what the proxy turns away, each with where that comes from. Everything else reaches a real
`mlflow server` (SQLite backend, a local artifact root served through the server) on a free loopback
port, so client code under test talks plain MLflow REST to `Workspace.tracking_uri`, as a job does to
the `MLFLOW_TRACKING_URI` Azure ML sets.

Where Azure's documentation says an operation is unsupported without saying how the service answers,
the proxy answers the way the one documented refusal does (a 404 with an empty body, issue #44896):
an assumption, marked as such below.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MLFLOW_API = "/api/2.0/mlflow"
MATRIX_MODELS = ("https://learn.microsoft.com/azure/machine-learning/how-to-manage-models-mlflow "
                 "(Support matrix for managing models with MLflow)")
MATRIX_RUNS = ("https://learn.microsoft.com/azure/machine-learning/how-to-track-experiments-mlflow "
               "(Support matrix for querying runs and experiments)")


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    body: dict[str, Any]

    def field(self, name: str) -> str:
        """A request parameter, from the JSON body (POST) or the query string (GET)."""
        value = self.body.get(name)
        if value is None:
            value = self.query.get(name, [""])[0]
        return value if isinstance(value, str) else json.dumps(value)

    def fields(self, name: str) -> list[str]:
        value = self.body.get(name)
        if value is None:
            return self.query.get(name, [])
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass(frozen=True)
class Refusal:
    """One thing Azure ML's MLflow does not do, how the proxy answers it, and the source."""

    what: str
    methods: tuple[str, ...]
    path: str  # a regular expression over the request path
    status: int
    message: str  # empty: answered with an empty body, as Azure answers an endpoint it lacks
    source: str
    applies: Callable[[Request], bool] = lambda request: True

    def matches(self, request: Request) -> bool:
        return request.method in self.methods and re.fullmatch(self.path, request.path) is not None and self.applies(request)

    def answer(self) -> tuple[int, bytes]:
        if not self.message:
            return self.status, b""
        code = "ENDPOINT_NOT_FOUND" if self.status == 404 else "INVALID_PARAMETER_VALUE"
        return self.status, json.dumps({"error_code": code, "message": self.message}).encode()


def _filter_has(pattern: str) -> Callable[[Request], bool]:
    """Whether a search's filter uses `pattern` outside its quoted values."""
    def applies(request: Request) -> bool:
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "''", request.field("filter"))
        return re.search(pattern, unquoted, re.IGNORECASE) is not None
    return applies


def _orders_runs_by_data(request: Request) -> bool:
    return any(re.match(r"\s*`?(metrics?|params?|parameters?|tags?)\.", o, re.IGNORECASE) for o in request.fields("order_by"))


def _renames_experiment(request: Request) -> bool:
    return bool(request.field("new_name"))


REFUSALS: tuple[Refusal, ...] = (
    Refusal("MLflow 3 logged models (/logged-models, what mlflow.<flavor>.log_model calls since MLflow 2.17/3.x)",
            ("GET", "POST", "PATCH", "DELETE"), rf"{MLFLOW_API}/logged-models(/.*)?", 404, "",
            "https://github.com/Azure/azure-sdk-for-python/issues/44896 (\"API request to endpoint "
            "/api/2.0/mlflow/logged-models failed with error code 404 != 200. Response body: ''\"); "
            "Azure/azureml-examples#3885 and #3902 (the logged-models API is not supported by the Azure ML tracking "
            "server; the examples switch to save_model + log_artifacts + register_model)"),
    Refusal("registered model aliases (set, get, delete)", ("GET", "POST", "DELETE"),
            rf"{MLFLOW_API}/registered-models/alias", 404, "",
            f"{MATRIX_MODELS}: aliases are not among the supported operations (stages are); Azure ML model assets have "
            "labels (latest) but no aliases. The answer's shape (404, empty body) is an assumption, as for logged models"),
    Refusal("renaming a registered model", ("POST",), rf"{MLFLOW_API}/registered-models/rename", 400,
            "Renaming registered models is not supported in Azure Machine Learning: registered models are immutable",
            f"{MATRIX_MODELS}: 'Rename registered models' (footnote 3: registered models are immutable objects)"),
    Refusal("deleting a registered model (the container)", ("DELETE",), rf"{MLFLOW_API}/registered-models/delete", 400,
            "Deleting a registered model is not supported in Azure Machine Learning; delete its versions instead",
            f"{MATRIX_MODELS}: 'Delete a registered model (container)'; 'delete all model versions for a given model'"),
    Refusal("searching registered models with LIKE / ILIKE", ("GET", "POST"), rf"{MLFLOW_API}/registered-models/search", 400,
            "Searching registered models with LIKE or ILIKE is not supported in Azure Machine Learning",
            f"{MATRIX_MODELS}: 'Search registered models by using string comparators LIKE and ILIKE'",
            _filter_has(r"\bI?LIKE\b")),
    Refusal("searching registered models by tag", ("GET", "POST"), rf"{MLFLOW_API}/registered-models/search", 400,
            "Searching registered models by tag is not supported in Azure Machine Learning",
            f"{MATRIX_MODELS}: 'Search registered models by tag' (studio only)", _filter_has(r"\btags?\.")),
    Refusal("ordering runs by metrics, parameters or tags", ("POST",), rf"{MLFLOW_API}/runs/search", 400,
            "Ordering runs by metrics, parameters or tags is not supported in Azure Machine Learning",
            f"{MATRIX_RUNS}: 'Ordering runs by metrics / parameters / tags' (footnote 1)", _orders_runs_by_data),
    Refusal("filtering runs with OR", ("POST",), rf"{MLFLOW_API}/runs/search", 400,
            "Filtering runs with OR is not supported in Azure Machine Learning",
            f"{MATRIX_RUNS}: 'Filtering runs with comparators OR'", _filter_has(r"\bOR\b")),
    Refusal("filtering runs with != on tags", ("POST",), rf"{MLFLOW_API}/runs/search", 400,
            "Filtering runs with != on tags is not supported in Azure Machine Learning",
            f"{MATRIX_RUNS}: footnote 2, '!= for tags not supported'", _filter_has(r"\btags?\.\S+\s*!=")),
    Refusal("renaming an experiment", ("POST",), rf"{MLFLOW_API}/experiments/update", 400,
            "Renaming experiments is not supported in Azure Machine Learning",
            f"{MATRIX_RUNS}: 'Renaming experiments'", _renames_experiment),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Workspace:
    """A running stand-in: `tracking_uri` is what a job's MLFLOW_TRACKING_URI points at."""

    root: Path
    server: subprocess.Popen[bytes]
    proxy: ThreadingHTTPServer
    upstream: str
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, what), in order
    # Reuse of deterministic nodes (jobs.py): reuse key -> (run id, outputs) of the run that produced them.
    reusable: dict[str, tuple[str, dict[str, Path]]] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        host, port = self.proxy.server_address[:2]
        return f"http://{host!s}:{port}"

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)

    def close(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()
        _stop(self.server)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_workspace(root: Path, python: str = sys.executable, timeout_s: float = 300) -> Workspace:
    """Start `mlflow server` (SQLite under root, artifacts under root) and the refusing proxy in front of it."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mlflow_cli = Path(python).parent / "mlflow"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (root / "mlflow-server.log").open("wb")
    server = subprocess.Popen(
        [str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    upstream = f"127.0.0.1:{port}"
    try:
        _wait_healthy(server, upstream, timeout_s, root / "mlflow-server.log")
    except BaseException:
        _stop(server)
        raise
    workspace = Workspace(root, server, None, upstream)  # type: ignore[arg-type]  # the proxy needs the workspace first
    workspace.proxy = ThreadingHTTPServer(("127.0.0.1", 0), _handler(workspace))
    workspace.proxy.daemon_threads = True
    threading.Thread(target=workspace.proxy.serve_forever, name="azureml-mlflow-proxy", daemon=True).start()
    return workspace


def _wait_healthy(server: subprocess.Popen[bytes], upstream: str, timeout_s: float, log: Path) -> None:
    wait_until_answering(server, f"http://{upstream}/health", timeout_s, log, "mlflow server")


def wait_until_answering(process: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path, name: str) -> None:
    """Until `url` answers 200; fails with the end of `log` if `process` exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{name} not ready after {timeout_s:.0f}s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server we started and its workers (its own process group)."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host",
              "content-length"}


def _handler(workspace: Workspace) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            body = self._body()
            url = urllib.parse.urlsplit(self.path)
            parsed: dict[str, Any] = {}
            if body and "json" in self.headers.get("Content-Type", "json"):
                try:
                    loaded = json.loads(body)
                    parsed = loaded if isinstance(loaded, dict) else {}
                except ValueError:
                    parsed = {}
            request = Request(self.command, url.path, urllib.parse.parse_qs(url.query), parsed)
            refusal = next((r for r in REFUSALS if r.matches(request)), None)
            if refusal is not None:
                workspace.refused.append((self.command, url.path, refusal.what))
                status, payload = refusal.answer()
                self._reply(status, {"Content-Type": "application/json"} if payload else {}, payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection = http.client.HTTPConnection(workspace.upstream, timeout=300)
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                self._reply(answer.status, {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP}, payload)
            finally:
                connection.close()

        def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Proxy
