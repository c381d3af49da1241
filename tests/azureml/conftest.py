"""A tmp copy of the example project with test-only Endpoint, BatchEndpoint, Monitor and SLO specs."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_specs

ENDPOINT = """\
apiVersion: specops/v1
kind: Endpoint
metadata: {name: credit-online}
spec:
  deployments:
    - name: blue
      model: credit-risk@3
      instance_count: 2
      environment_variables: {LOG_LEVEL: info}
      request_settings: {request_timeout_ms: 3000, max_concurrent_requests_per_instance: 4}
      liveness_probe: {initial_delay: 5, period: 15}
      data_collector: {sampling_rate: 0.5}
    - name: green
      model: credit-risk@champion
    - name: shadow
      model: credit-risk@4
  traffic: {blue: 90, green: 10}
  mirror_traffic: {shadow: 20}
  rollout:
    strategy: bandit
    reward: {metric: accuracy}
---
apiVersion: specops/v1
kind: BatchEndpoint
metadata: {name: credit-batch}
spec:
  default_deployment: main
  dataset: credit-applications
  deployments:
    - name: main
      model: credit-risk@3
      mini_batch_size: 500
      max_concurrency_per_instance: 2
      retry_settings: {max_retries: 2, timeout: 60}
---
apiVersion: specops/v1
kind: Monitor
metadata: {name: credit-drift}
spec:
  baseline: {dataset: credit-applications}
  target: {endpoint: credit-online, lookback_window_size: P1D}
  # Every signal block, each with thresholds other than its defaults, so a rendered value can only come from here.
  prediction_drift:
    metric_thresholds: {numerical: {population_stability_index: 0.25}, categorical: {jensen_shannon_distance: 0.2}}
  data_quality:
    metric_thresholds:
      numerical: {null_value_rate: 0.05, out_of_bounds_rate: 0.02}
      categorical: {null_value_rate: 0.01, data_type_error_rate: 0.03}
  performance: {max_drop: {accuracy: 0.05, f1_score: 0.04}}
  fairness: {sensitive: gender}
  feature_attribution_drift: {metric_thresholds: {normalized_discounted_cumulative_gain: 0.85}}
  min_target_rows: 500
  schedule: "0 * * * *"
  actions: {retrain: credit-risk-training}
---
apiVersion: specops/v1
kind: SLO
metadata: {name: credit-online}
spec:
  endpoint: credit-online
  objectives:
    - {sli: availability, target: 0.995}
    - {sli: latency, threshold_ms: 350}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    # The example's own Endpoint and Monitor stay out: ENDPOINT declares the ones these tests check.
    copy_specs(root / "specs")
    # The deployments' scoring script, which the SDK opens before it sends a deployment (the code snapshot).
    for name in ("params.yaml", "requirements.lock", "tools/azureml-serving.lock", "src/specops/serving/azureml_score.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    (root / "specs" / "serving.yaml").write_text(ENDPOINT)
    # State stays in .specops/ here: only test_remote_state.py runs a storage account (Azurite).
    spec = root / "specs" / "project.yaml"
    spec.write_text(re.sub(r"      state:.*\n(        .*\n)+", "", spec.read_text()))
    return root


@pytest.fixture(autouse=True)
def quick_experimental_check(monkeypatch):
    """azure-ai-ml decides whether to log "experimental class" warnings by walking the whole call
    stack with inspect.stack(), which under pytest (thousands of modules) costs most of these
    tests' time. Skipping that warning changes nothing the tests check."""
    from azure.ai.ml._utils import _experimental

    monkeypatch.setattr(_experimental, "_should_skip_warning", lambda: True)
