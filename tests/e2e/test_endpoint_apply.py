"""`specops apply` deploys the example Endpoint and rolls model changes out on a live server under load.

One trained example project (champion v1) for the module. A pull request's
spec change is simulated by rewriting specs/endpoints/credit-scoring.yaml;
traffic comes from the example project's own client (credit_risk.traffic),
which also reports every label back, so analysis compares accuracy for real.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from specops.project import Project
from specops.state.records import DEGRADED, HEALTHY
from specops.errors import SpecopsError
from specops.serving import daemon
from specops.core.paths import ProjectPaths
from specops.serving.keys import ensure_keys
from specops.serving.traffic import read_traffic
from tests.conftest import make_project, specops
from tests.serving.conftest import free_port

pytestmark = pytest.mark.xdist_group("endpoint-apply")
ENDPOINT = "credit-scoring"


def deployments(*names_and_refs: tuple[str, str], traffic: dict[str, int]) -> str:
    """The spec's deployments and traffic block, as a PR would write them."""
    lines = ["  deployments:"]
    for name, ref in names_and_refs:
        lines += [f"    - name: {name}", f"      model: {ref}", "      instance_count: 1"]
    return "\n".join(lines) + "\n  traffic: {" + ", ".join(f"{k}: {v}" for k, v in traffic.items()) + "}\n"


def write_spec(root: Path, original: str, *refs: tuple[str, str], traffic: dict[str, int]) -> None:
    head, rest = original.split("  deployments:\n", 1)
    tail = rest[rest.index("  rollout:"):]
    path = root / "specs" / "endpoints" / f"{ENDPOINT}.yaml"
    path.write_text(head + deployments(*refs, traffic=traffic) + tail)


def register_versions(root: Path) -> None:
    """v2: champion v1's own model registered again (good); v3: a forest fit on inverted labels (bad)."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from specops.features.transforms import compute_features
    from specops.registry import connect
    from specops.spec import Dataset, FeatureSet, load_specs

    specs = load_specs(root)
    client = connect(specs)
    v1 = client.get_model_version("credit-risk", "1")
    client.create_model_version("credit-risk", v1.source, run_id=v1.run_id, tags=v1.tags)
    data = pd.read_csv(root / "data" / "credit.csv")
    features = compute_features(data, specs.get(FeatureSet, "credit-features").spec, specs.get(Dataset, "credit-applications").spec)
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(features, 1 - data["default"])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=features.head(2),
                                        pip_requirements=["scikit-learn"], serialization_format="pickle")
    mlflow.register_model(info.model_uri, "credit-risk", tags={"lineage.feature_set": "credit-features@v1"})


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("endpoint-apply") / "proj", endpoint_port=free_port())
    Project(root).apply()  # trains, registers v1 and starts the server
    register_versions(root)
    yield root
    daemon.stop(ProjectPaths(root), ENDPOINT)


def score(root: Path, row: dict) -> requests.Response:
    info = daemon.server_info(ProjectPaths(root), ENDPOINT)
    key = ensure_keys(ProjectPaths(root).endpoint(ENDPOINT))["primary"]
    return requests.post(f"http://127.0.0.1:{info['port']}/score", json={"data": [row]},
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)


ROW = {"income": 52000.0, "debt_ratio": 0.3, "credit_score": 700, "age": 40, "employment_years": 5.0, "region": "north"}


def test_first_apply_serves_the_champion_and_converges(project: Path):
    response = score(project, ROW)
    assert response.status_code == 200, response.text
    assert response.headers["azureml-model-deployment"] == "blue"
    state = Project(project).status().to_dict()["resources"][f"Endpoint/{ENDPOINT}"]
    assert state["outputs"]["versions"] == {"blue": "1", "green": "1"}  # champion and challenger: both v1
    assert Project(project).plan().empty


def test_a_bad_challenger_is_rolled_back_until_its_alias_moves(project: Path):
    from credit_risk.bad_model import register_bad_challenger
    from credit_risk.traffic import Traffic
    from specops.registry import connect
    from specops.spec import load_specs

    bad = register_bad_challenger(project)
    (operation,) = Project(project).plan().operations
    assert operation.before["serving"] == f"stale (green: v1 -> v{bad})"
    with Traffic(project, ENDPOINT, rate=150).start() as traffic:
        with pytest.raises(SpecopsError, match="rolled back"):
            Project(project).apply()
    assert traffic.failed == 0, traffic.summary()
    assert traffic.deployments["green"] > 0, traffic.summary()  # the canary really got traffic before the rollback
    assert read_traffic(ProjectPaths(project).endpoint(ENDPOINT))[0] == {"blue": 100}
    client = connect(load_specs(project))
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "1"
    assert Project(project).plan().operations[0].before["serving"].startswith("rollout Degraded (incident ")

    client.set_registered_model_alias("credit-risk", "challenger", "1")  # the team rejects the bad version
    Project(project).apply()  # green loads v1 again; the stable version needs no rollout
    assert Project(project).plan().empty


def test_rollouts_driven_by_apply(project: Path):
    from credit_risk.traffic import Traffic
    from specops.registry import connect
    from specops.spec import load_specs

    path = project / "specs" / "endpoints" / f"{ENDPOINT}.yaml"
    original = path.read_text()
    with_good = (("blue", "credit-risk@1"), ("green", "credit-risk@2"))
    traffic = Traffic(project, ENDPOINT, rate=150).start()
    try:
        # A PR sends all traffic to a new deployment of a good version: the canary is promoted.
        write_spec(project, original, *with_good, traffic={"green": 100})
        plan = Project(project).plan()
        assert [op.key for op in plan.operations] == [f"Endpoint/{ENDPOINT}"]
        Project(project).apply()
        assert read_traffic(ProjectPaths(project).endpoint(ENDPOINT))[0] == {"green": 100}
        assert connect(load_specs(project)).get_model_version_by_alias("credit-risk", "champion").version in (2, "2")
        assert Project(project).plan().empty
        # One record says what is deployed: the rollout, and the endpoint's traffic, as the rollout left them.
        status = Project(project).status()
        assert status.rollouts[ENDPOINT].status == HEALTHY and status.rollouts[ENDPOINT].stable == "green"
        served = {r.key: r for r in status.resources}[f"Endpoint/{ENDPOINT}"]
        assert served.outputs["traffic"] == {"green": 100} and served.live == {"serving": "running"}
        shown = specops("status", cwd=project, check=True).stdout
        assert f"rollout of {ENDPOINT}: Healthy (canary): green v2, promoted from blue v1; traffic green 100%" in shown

        # The next PR rolls out the bad version: analysis fails, traffic goes back, apply fails, the change stays planned.
        write_spec(project, original, *with_good, ("bad", "credit-risk@3"), traffic={"bad": 100})
        with pytest.raises(SpecopsError, match="rolled back"):
            Project(project).apply()
        assert read_traffic(ProjectPaths(project).endpoint(ENDPOINT))[0] == {"green": 100}
        assert list((project / ".specops" / "incidents").glob("*.md"))
        degraded = Project(project).status()  # the failed apply committed nothing, the rollback did
        assert degraded.rollouts[ENDPOINT].status == DEGRADED and degraded.rollouts[ENDPOINT].incident
        assert {r.key: r for r in degraded.resources}[f"Endpoint/{ENDPOINT}"].outputs["rollout"] == DEGRADED
        (operation,) = Project(project).plan().operations
        assert operation.before["serving"].startswith("rollout Degraded (incident ")

        # Reverting the PR recovers the endpoint: nothing left to do.
        write_spec(project, original, *with_good, traffic={"green": 100})
        assert Project(project).plan().empty
    finally:
        traffic.stop()
    assert traffic.failed == 0, traffic.summary()
    assert traffic.deployments["bad"] > 0 and traffic.deployments["green"] > 0, traffic.summary()


def test_a_stopped_server_is_planned_and_restarted(project: Path):
    info = daemon.server_info(ProjectPaths(project), ENDPOINT)
    os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while daemon.server_info(ProjectPaths(project), ENDPOINT) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    changes = [(c.path, c.old, c.new) for op in Project(project).plan().operations for c in op.changes]
    assert ("serving", "stopped", "running") in changes
    Project(project).apply()
    assert score(project, ROW).status_code == 200
    assert Project(project).plan().empty
