"""Freshness from a real MLflow registry: the served versions' training runs, aliases resolved now."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from specops.slo import budget as b
from specops.slo.engine import evaluate, served_versions_trained_at
from specops.spec import load_specs
from specops.spec.slos import SLO

FRESHNESS = """\
---
apiVersion: specops/v1
kind: SLO
metadata: {name: model-age}
spec:
  endpoint: scoring
  objectives: [{sli: freshness, max_age: P30D}]
"""


def test_the_champion_s_training_run_dates_the_served_model(project: Path):
    from specops.registry import connect

    (project / "specs" / "slo.yaml").write_text((project / "specs" / "slo.yaml").read_text() + FRESHNESS)
    specs = load_specs(project)
    client = connect(specs)
    client.create_registered_model("credit-risk")
    experiment = client.create_experiment("train")
    runs = [client.create_run(experiment) for _ in range(2)]
    for run in runs:
        client.create_model_version("credit-risk", "file:///nowhere", run_id=run.info.run_id)
    client.set_registered_model_alias("credit-risk", "champion", "1")
    client.set_registered_model_alias("credit-risk", "challenger", "2")  # green: no live traffic, not served

    slo = specs.get(SLO, "model-age")
    trained = served_versions_trained_at(specs, slo)
    assert trained == {"credit-risk v1": pytest.approx(runs[0].info.start_time / 1000)}
    [status] = evaluate(specs, slo, now=trained["credit-risk v1"] + 12 * 86400)
    assert status.sli == pytest.approx(12) and status.remaining == pytest.approx(0.6) and status.status == b.OK
    assert status.note.startswith("credit-risk v1 trained ")

    client.delete_registered_model_alias("credit-risk", "champion")
    [status] = evaluate(specs, slo, now=time.time())
    assert status.status == b.NO_DATA and status.note == "no served model version found in the registry"
