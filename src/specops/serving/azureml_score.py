"""The scoring script of specops' Azure ML deployments: `init()` and `run()`, as azureml-inference-server-http
(online) and the batch driver call them.

It serves a registered model the way the local endpoint does, through the same `Scorer`: raw applicant rows
(the Dataset columns the feature set reads) are parsed and checked by the same `InputSchema`, turned into
features by the same `compute_features`, and answered in the same shape (a JSON list of predictions; a 4xx
with `{"error", "field"}` for a bad body). Without it Azure ML would serve the bare MLflow model, which
takes engineered columns only (issue 10, item 3: training/serving skew).

What the deployment serves comes from its environment, rendered by `specops.render.azureml`:
`SPECOPS_SERVING` (the feature set, the Dataset and the endpoint's server settings, as JSON) and
`AZUREML_MODEL_DIR` (set by Azure ML: where the registered model version is mounted).

The raw rows and the predictions are collected with `azureml-ai-monitoring` as `model_inputs` and
`model_outputs`, which is what Azure ML's data collector asks a custom scoring script to do: the model
monitor then sees the columns the Monitor spec watches, not the engineered ones. Each request's latency and
result and its predictions go to Application Insights as custom metrics (`specops.serving.azure_telemetry`,
a no-op unless the deployment has App Insights enabled).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

SERVING_VARIABLE = "SPECOPS_SERVING"  # kept equal to specops.render.azureml.SERVING_VARIABLE (a test checks)
INPUTS, OUTPUTS = "model_inputs", "model_outputs"  # the data collector's collection names
PREDICTION = "prediction"  # the model_outputs column (the name the local inference log uses)

log = logging.getLogger("specops.azureml_score")

_scorer: Any = None
_collectors: dict[str, Any] = {}
_telemetry: Any = None  # specops.serving.azure_telemetry.ScoringTelemetry: App Insights custom metrics


def _importable() -> None:
    """Azure ML puts the code snapshot's root (AML_APP_ROOT) on sys.path, not its src/ folder; this file sits in
    src/specops/serving/, so src/ is two folders up. Outside Azure (tests, a local run) specops is importable."""
    src = Path(__file__).resolve().parents[2]
    if (src / "specops" / "__init__.py").exists() and str(src) not in sys.path:
        sys.path.insert(0, str(src))


def model_folder(model_dir: Path) -> Path:
    """The MLflow model inside AZUREML_MODEL_DIR: Azure ML mounts a registered folder model under the folder's
    own name (`<dir>/model/MLmodel` for a model registered from a run's `model` artifact); a model registered
    from the MLflow folder itself has MLmodel at the top."""
    if (model_dir / "MLmodel").exists():
        return model_dir
    found = sorted(model_dir.glob("*/MLmodel"))
    if len(found) != 1:
        raise RuntimeError(f"AZUREML_MODEL_DIR={model_dir}: expected one MLflow model (an MLmodel file at the top or "
                           f"one folder down), found {len(found)}")
    return found[0].parent


def init() -> None:
    global _scorer, _collectors, _telemetry
    _importable()
    from specops.serving.config import DeploymentConfig
    from specops.serving.scorer import Scorer

    settings = json.loads(os.environ[SERVING_VARIABLE])
    model_dir = Path(os.environ["AZUREML_MODEL_DIR"])
    config = DeploymentConfig(
        name=settings["deployment"], model=settings["model"], model_path=str(model_folder(model_dir)),
        feature_set=settings["feature_set"], dataset=settings["dataset"],
        out_of_range=settings.get("out_of_range", "reject"), max_rows=settings.get("max_rows"),
    )
    _scorer = Scorer(config)
    _collectors = _start_collectors()
    _telemetry = _start_telemetry(settings)


def _start_telemetry(settings: dict[str, Any]) -> Any:
    from specops.serving.azure_telemetry import ScoringTelemetry

    try:
        return ScoringTelemetry(deployment=settings["deployment"], endpoint=settings.get("endpoint") or "")
    except ImportError as exc:  # an environment without the Azure Monitor distro: serve without custom metrics
        log.warning("custom metrics are off: %s", exc)
        return None


def _start_collectors() -> dict[str, Any]:
    """One Collector per collection; none when the deployment's data collector is off (Azure ML then sets no
    collector configuration), so scoring never depends on it."""
    if not (os.environ.get("AZUREML_MDC_CONFIG_PATH") or os.environ.get("AZUREML_MDC_ENABLED", "").lower() == "true"):
        return {}
    try:
        from azureml.ai.monitoring import Collector
    except ImportError:  # an environment without the collector library: serve, and say why nothing is collected
        log.warning("azureml-ai-monitoring is not installed: model_inputs and model_outputs are not collected")
        return {}

    def report(error: Exception) -> None:  # a collection failure loses data, never the request
        log.warning("data collector: %s", error)

    return {name: Collector(name=name, on_error=report) for name in (INPUTS, OUTPUTS)}


def run(raw_data: Any) -> Any:
    """Online: the request body (a JSON string) -> predictions, or a 4xx naming what is wrong.
    Batch: a mini-batch (a list of CSV file paths) -> one row per input row: the file, the row, the prediction."""
    if isinstance(raw_data, list):
        return _run_batch(raw_data)
    return _run_online(raw_data if isinstance(raw_data, bytes) else str(raw_data).encode())


def _run_online(body: bytes) -> Any:
    import time

    from specops.serving.schema import BadRequest

    started, status = time.perf_counter(), 500
    try:
        rows = _scorer.schema.parse(body)
        predictions = _scorer.score(rows)
        status = 200
    except BadRequest as exc:  # 400, 413 or 422 as the local endpoint answers it
        status = exc.status
        return _response(exc.body(), exc.status)
    finally:
        if _telemetry is not None:
            _telemetry.record_request((time.perf_counter() - started) * 1000, status)
    _collect(rows, predictions)
    if _telemetry is not None:
        _telemetry.record_predictions(predictions)
    return predictions


def _response(body: dict[str, Any], status: int) -> Any:
    from azureml_inference_server_http.api.aml_response import AMLResponse

    return AMLResponse(body, status, json_str=True)


def _collect(rows: list[list[Any]], predictions: list[Any]) -> None:
    if not _collectors:
        return
    import pandas as pd

    inputs = pd.DataFrame(rows, columns=list(_scorer.schema.columns))
    context = _collectors[INPUTS].collect(inputs)  # the correlation id joins each output to its inputs
    _collectors[OUTPUTS].collect(pd.DataFrame({PREDICTION: predictions}), context)


def _run_batch(files: list[str]) -> Any:
    import pandas as pd

    frames = []
    columns = list(_scorer.schema.columns)
    for file in files:
        frame = pd.read_csv(file)
        predictions = _scorer.score(frame[columns].values.tolist())  # the online path's features and model call
        frames.append(pd.DataFrame({"file": Path(file).name, "row": range(len(frame)), PREDICTION: predictions}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["file", "row", PREDICTION])
