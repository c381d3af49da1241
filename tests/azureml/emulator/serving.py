"""An online deployment served as Azure ML serves it: the real `azureml-inference-server-http` (`azmlinfsrv`, the
server inside Azure ML's inference images), the deployment's scoring script from its code snapshot, the
registered model version mounted under AZUREML_MODEL_DIR, and a stand-in for the data collector's sidecar.

Layout, as in an Azure ML inference container (AML_APP_ROOT is /var/azureml-app there):
- `<app>/<code folder>/...`: the `code_configuration.code` snapshot (less what .amlignore/.gitignore leave out);
  AZUREML_ENTRY_SCRIPT = `<code folder>/<scoring_script>`, AZUREML_SOURCE_DIRECTORY = `<code folder>`.
- `<app>/azureml-models/<model>/<version>/model/`: the registered version's files under the folder name it was
  registered from (`runs:/<run>/model`); AZUREML_MODEL_DIR = `<app>/azureml-models/<model>/<version>`.
- The deployment's `environment_variables`, and for its data collector AZUREML_MDC_CONFIG_PATH (the collections
  the deployment enables, with their sampling rate), AZUREML_MDC_HOST/PORT: where azureml-ai-monitoring sends
  what the script collects (`POST /modeldata/log`, the collection in the `ce-type` header).

The server runs in its own venv (.venv-serving, from tools/azureml-serving.lock: the Environment the
deployments get on Azure), since it pins packages the project's lock holds at other versions.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.azureml.emulator.jobs import _snapshot
from tests.azureml.emulator.workspace import Workspace, _stop, free_port, wait_until_answering


@dataclass
class Collected:
    """What the data collector stand-in received: collection -> rows (JSON records), in order."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # collection -> per payload, its correlation id (the ce-x-request-id header; trace-id is the payload's own id)
    correlations: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ServedDeployment:
    name: str
    model: str  # the resolved `name:version`
    url: str
    process: subprocess.Popen[bytes]
    collector: ThreadingHTTPServer
    collected: Collected
    log: Path
    requests: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds) of every scored request

    def score(self, body: dict[str, Any] | str) -> tuple[int, Any]:
        data = body if isinstance(body, str) else json.dumps(body)
        request = urllib.request.Request(f"{self.url}/score", data=data.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        self.requests.append((status, time.perf_counter() - started))
        return status, json.loads(payload) if payload else None

    def wait_collected(self, collection: str, rows: int, timeout_s: float = 20) -> list[dict[str, Any]]:
        """The collection's rows once `rows` have arrived (the collector sends from a background worker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.collected.lock:
                found = list(self.collected.rows.get(collection, []))
            if len(found) >= rows:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"{collection}: {len(found)} rows collected, expected {rows}:\n{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        _stop(self.process)
        self.collector.shutdown()
        self.collector.server_close()


def serve_deployment(yaml_path: Path, workspace: Workspace, *, venv: Path, workdir: Path,
                     timeout_s: float = 120) -> ServedDeployment:
    """Load the rendered OnlineDeployment YAML with the SDK's own loader and serve it as Azure ML would."""
    from azure.ai.ml import load_online_deployment

    deployment = load_online_deployment(str(yaml_path))
    name, version = _model(str(deployment.model), workspace)
    app = workdir / "azureml-app"
    code = Path(str(deployment.code_configuration.code))
    code = (code if code.is_absolute() else yaml_path.parent / code).resolve()
    _snapshot(code, app / code.name)
    model_dir = app / "azureml-models" / name / version
    _download(workspace, name, version, model_dir)
    collected = Collected()
    collector = _collector(collected)
    mdc_config = workdir / "mdc-config.json"
    mdc_config.write_text(json.dumps(_mdc_config(deployment)))
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "HOME": str(workdir), "LANG": "C.UTF-8",
        **(deployment.environment_variables or {}),
        "AML_APP_ROOT": str(app), "AZUREML_SOURCE_DIRECTORY": code.name,
        "AZUREML_ENTRY_SCRIPT": f"{code.name}/{deployment.code_configuration.scoring_script}",
        "AZUREML_MODEL_DIR": str(model_dir), "AZUREML_MDC_CONFIG_PATH": str(mdc_config),
        "AZUREML_MDC_HOST": "127.0.0.1", "AZUREML_MDC_PORT": str(collector.server_address[1]),
        "SERVICE_NAME": deployment.endpoint_name, "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    log = workdir / "azmlinfsrv.log"
    # The CLI wants the script named (inference images start it with the same variables set).
    process = subprocess.Popen([str(venv / "bin" / "azmlinfsrv"), "--entry_script", env["AZUREML_ENTRY_SCRIPT"],
                                "--port", str(port), "--worker_count", "1"],
                               cwd=app, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    served = ServedDeployment(deployment.name, f"{name}:{version}", f"http://127.0.0.1:{port}", process, collector, collected, log)
    try:
        _wait_ready(served, timeout_s)
    except BaseException:
        served.close()
        raise
    return served


def _model(reference: str, workspace: Workspace) -> tuple[str, str]:
    """`azureml:name:3` -> (name, "3"); `name@latest` -> the newest version in the stand-in registry."""
    text = reference.removeprefix("azureml:")
    if "@" in text:
        name, label = text.split("@", 1)
        if label != "latest":
            raise ValueError(f"{reference}: Azure ML resolves only the latest label")
        versions = workspace.client().search_model_versions(f"name='{name}'")
        return name, str(max(int(v.version) for v in versions))
    name, version = text.split(":", 1)
    return name, version


def _download(workspace: Workspace, name: str, version: str, dest: Path) -> None:
    """The version's files under `dest`, in the folder they were registered from (`model/`)."""
    import mlflow.artifacts

    source = workspace.client().get_model_version_download_uri(name, version)
    dest.mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dest), tracking_uri=workspace.tracking_uri)


def _mdc_config(deployment: Any) -> dict[str, Any]:
    """The collector configuration Azure ML hands the container for the deployment's data_collector."""
    collector = deployment.data_collector
    if collector is None:
        return {"collections": {}, "runMode": "cloud"}
    rate = int(round((collector.sampling_rate or 1.0) * 100))
    return {"runMode": "cloud", "collections": {
        name: {"enabled": str(c.enabled).lower() == "true", "sampleRatePercentage": rate}
        for name, c in (collector.collections or {}).items()}}


def _collector(collected: Collected) -> ThreadingHTTPServer:
    class Sidecar(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            collection = self.headers.get("ce-type", "").removeprefix("azureml.inference.")
            rows = json.loads(body) if body else []
            with collected.lock:
                collected.rows.setdefault(collection, []).extend(rows)
                collected.correlations.setdefault(collection, []).append(self.headers.get("ce-x-request-id", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sidecar)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="mdc-sidecar", daemon=True).start()
    return server


def _wait_ready(served: ServedDeployment, timeout_s: float) -> None:
    wait_until_answering(served.process, f"{served.url}/", timeout_s, served.log, "azmlinfsrv")
