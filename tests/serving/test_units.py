"""The server's parts without a server: body parsing, the forest fast path, keys, metrics."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from specops.core.http import metric_samples
from specops.rollout.metrics import parse as parse_scrape
from specops.serving.fastpath import fast_predict
from specops.serving.keys import KeyChecker, ensure_keys, regenerate_key
from specops.serving.metrics import BUCKETS, Metrics, shared_array
from specops.serving.schema import BadRequest, InputSchema
from specops.slo.history import parse_counts
from specops.spec.kinds import DatasetSpec, FeatureSetSpec

DATASET = DatasetSpec.model_validate({"path": "d.csv", "target": "y", "columns": {
    "income": {"type": "float"}, "score": {"type": "int", "nullable": True},
    "region": {"type": "str", "allowed": ["north", "south"]}, "y": {"type": "int"}}})
FEATURES = FeatureSetSpec.model_validate({"dataset": "d", "version": 1, "owner": "o", "refresh": "0 0 * * *", "features": [
    {"name": "log_income", "transform": "log1p", "inputs": ["income"]}, {"name": "score"}, {"name": "region", "transform": "one_hot"}]})
SCHEMA = InputSchema.of(FEATURES, DATASET)


def parse(document) -> list:
    return SCHEMA.parse(json.dumps(document).encode())


def bad(document) -> tuple[str, str]:
    with pytest.raises(BadRequest) as info:
        SCHEMA.parse(document if isinstance(document, bytes) else json.dumps(document).encode())
    return info.value.field, info.value.message


def test_every_accepted_format_gives_rows_in_schema_order():
    expected = [[1.0, 700, "north"]]
    record = {"region": "north", "score": 700, "income": 1.0, "extra": "ignored"}
    assert parse({"input_data": {"columns": ["region", "income", "score"], "index": [0], "data": [["north", 1.0, 700]]}}) == expected
    assert parse({"input_data": [record]}) == expected
    assert parse({"data": [record]}) == expected
    assert parse({"dataframe_records": [record]}) == expected
    assert parse({"dataframe_split": {"columns": ["score", "region", "income"], "data": [[700, "north", 1.0]]}}) == expected
    assert parse({"data": [{**record, "score": None}]}) == [[1.0, None, "north"]]  # score is nullable


@pytest.mark.parametrize("document, field, message", [
    (b"{", "body", "not valid JSON"),
    ([1, 2], "body", "expected a JSON object"),
    ({"rows": []}, "body", "expected one of input_data"),
    ({"data": []}, "data", "no rows"),
    ({"input_data": {"columns": [["x"]], "data": []}}, "input_data.columns", "expected a list of column names"),
    ({"input_data": {"columns": ["income", "score", "region"], "data": [[1.0, 700]]}}, "input_data.data[0]", "expected a list of 3 values"),
    ({"input_data": {"columns": ["income", "score", "region"], "data": [[1.0, 7.5, "north"]]}}, "input_data.data[0][1] (score)",
     "expected an integer"),
    ({"data": [{"income": True, "score": 1, "region": "north"}]}, "data[0].income", "expected a number"),
    ({"data": [{"income": None, "score": 1, "region": "north"}]}, "data[0].income", "must not be null"),
    ({"data": [{"income": 1.0, "score": 1, "region": "mars"}]}, "data[0].region", "'mars' is not one of north, south"),
    ({"data": [{"income": 1.0, "region": "north"}]}, "data[0]", "missing column(s) score"),
    ({"data": ["x"]}, "data[0]", "expected a record"),
])
def test_bad_bodies_name_the_field(document, field, message):
    got_field, got_message = bad(document)
    assert got_field == field and message in got_message


def test_non_finite_numbers_are_refused():
    assert bad(b'{"data": [{"income": NaN, "score": 1, "region": "north"}]}')[0] == "data[0].income"


def test_forest_fast_path_equals_predict_and_other_models_keep_their_own():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(400, 4))
    target = np.where((inputs[:, 0] > 0) ^ (inputs[:, 1] > 0.5), "bad", "good")
    forest = RandomForestClassifier(n_estimators=15, random_state=0).fit(inputs, target)
    predict = fast_predict(forest)
    assert predict != forest.predict
    fresh = rng.normal(size=(1000, 4))
    assert (predict(fresh) == forest.predict(fresh)).all()
    fresh[0, 0] = np.nan  # not finite: the model's own predict decides
    assert (predict(fresh) == forest.predict(fresh)).all()
    linear = LogisticRegression().fit(inputs, target)
    assert fast_predict(linear) == linear.predict


def test_keys_are_private_rotated_and_both_accepted(tmp_path: Path):
    keys = ensure_keys(tmp_path)
    assert oct(os.stat(tmp_path / "keys.json").st_mode & 0o777) == "0o600"
    checker = KeyChecker(tmp_path)
    assert checker.accepts(f"Bearer {keys['primary']}") and checker.accepts(f"Bearer {keys['secondary']}")
    assert not checker.accepts(keys["primary"]) and not checker.accepts(None) and not checker.accepts("Bearer nope")
    rotated = regenerate_key(tmp_path, "secondary")
    assert rotated["primary"] == keys["primary"] and rotated["secondary"] != keys["secondary"]
    assert ensure_keys(tmp_path) == rotated


def cumulative(observations: list[float]) -> list[list[float]]:
    """The histogram's buckets as a scraper reads them: [le, observations <= le], +Inf last."""
    return [[bound if bound != math.inf else "+Inf", float(sum(o <= bound for o in observations))]
            for bound in (*BUCKETS, math.inf)]


def test_metrics_sum_over_workers_and_parse_back_to_the_same_snapshot():
    array = shared_array(2, 2)
    first, second = Metrics(array, ["blue"], 0, capacity=2), Metrics(array, ["blue"], 1, capacity=2)
    first.observe("blue", 200, 0.002)
    second.observe("blue", 200, 0.2)
    second.observe("blue", 503, 0.02)
    second.observe("blue", 408, 9.0)  # a timeout: a server error, counted among 4xx, beyond the last bucket
    for worker in (first, second):
        worker.set_slots(["blue", "green"])  # a reload added green; blue keeps its slot and counts
    first.observe("green", 400, 0.001)
    expected = {"blue": {"requests": 4.0, "errors": 2.0, "buckets": cumulative([0.002, 0.2, 0.02, 9.0])},
                "green": {"requests": 1.0, "errors": 0.0, "buckets": cumulative([0.001])}}
    for text in (first.exposition().decode(), second.exposition().decode()):  # whichever worker answers the scrape
        assert parse_scrape(text) == expected
        assert parse_counts(text) == {"blue": {"good": 2.0, "bad": 2.0}, "green": {"good": 0.0, "bad": 0.0}}
        assert 'specops_requests_total{deployment="blue",status="4xx"} 1.0\n' in text
        read = {(s.name, s.labels["deployment"]): s.value for s in metric_samples(text) if s.name.endswith(("_sum", "_count"))}
        assert read["specops_request_duration_seconds_sum", "blue"] == pytest.approx(9.222)
        assert read["specops_request_duration_seconds_count", "green"] == 1.0


def test_the_exposition_keeps_the_dashboards_names_and_labels():
    metrics = Metrics(shared_array(1, 1), ["blue"], 0)
    metrics.observe("blue", 200, 0.01)
    found = {(s.name, tuple(sorted(s.labels))) for s in metric_samples(metrics.exposition().decode())}
    assert found == {("specops_requests_total", ("deployment", "status")), ("specops_errors_total", ("deployment",)),
                     ("specops_request_duration_seconds_bucket", ("deployment", "le")),
                     ("specops_request_duration_seconds_sum", ("deployment",)),
                     ("specops_request_duration_seconds_count", ("deployment",))}


def test_a_model_without_the_sklearn_flavor_is_served_through_pyfunc(tmp_path: Path):
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    from specops.features.transforms import compute_features
    from specops.serving.config import DeploymentConfig
    from specops.serving.scorer import Scorer

    class HighScore(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return (model_input["score"] > 600).astype(int)

    example = compute_features(pd.DataFrame([[1.0, 700, "north"]], columns=SCHEMA.columns), FEATURES, DATASET)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=HighScore(), pip_requirements=[],
                             signature=infer_signature(example, np.array([1])), input_example=example)
    config = DeploymentConfig(name="d", model="m@1", version="1", model_path=str(tmp_path / "model"),
                              feature_set=FEATURES.model_dump(mode="json"), dataset=DATASET.model_dump(mode="json"))
    assert Scorer(config).score([[1.0, 700, "north"], [2.0, 500, "south"]]) == [1, 0]


def test_inference_log_partitions_by_hour_and_joins_feedback(tmp_path: Path, monkeypatch):
    from specops.serving import inference_log
    from specops.serving.inference_log import InferenceLog, read_log

    clock = [3600.0 * 500_000]
    monkeypatch.setattr(inference_log.time, "time", lambda: clock[0])
    log = InferenceLog(tmp_path, worker=0)
    log.write_requests([{"time": clock[0], "request_id": "a", "prediction": 1}])
    clock[0] += 3600
    log.write_requests([{"time": clock[0], "request_id": "b", "prediction": 0}])
    log.write_feedback([{"request_id": "b", "label": 1}])
    assert len(list((tmp_path / "inference").glob("requests-*-0.jsonl"))) == 2
    assert [(r["request_id"], r.get("label")) for r in read_log(tmp_path)] == [("a", None), ("b", 1)]


def test_sensitive_attributes_are_read_for_the_log_but_never_parsed_as_inputs():
    dataset = DatasetSpec.model_validate({**DATASET.model_dump(), "columns": {**DATASET.model_dump()["columns"],
                                          "gender": {"type": "str", "allowed": ["F", "M"]}}, "sensitive": ["gender"]})
    schema = InputSchema.of(FEATURES, dataset)
    assert "gender" not in schema.columns and schema.sensitive == ("gender",)
    row = {"income": 50000.0, "score": 700, "region": "north"}
    records = json.dumps({"data": [{**row, "gender": "F"}, dict(row)]}).encode()
    assert schema.sensitive_values(records, 2) == [{"gender": "F"}, {}]
    split = json.dumps({"input_data": {"columns": [*row, "gender"], "data": [[*row.values(), "M"]]}}).encode()
    assert schema.sensitive_values(split, 1) == [{"gender": "M"}]
    assert schema.parse(split) == SCHEMA.parse(split)  # the attribute changes nothing the model sees
    assert SCHEMA.sensitive_values(records, 2) == [{}, {}]  # no sensitive columns declared: nothing is read
