"""Columns declared `role: id` or `role: date`: validated like any column, never a model input, never watched for drift."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from specops.errors import SpecErrors, StageFailed
from specops.monitoring.baseline import model_inputs
from specops.spec.kinds import Dataset
from specops.spec.loader import load_specs
from specops.spec.monitors import Monitor, monitored_features

DATASET_FILE = "specs/data/credit-applications.yaml"
ROLES = "    applicant_id: {type: int, unique: true, role: id}\n    applied_on: {type: str, role: date}\n"


def with_id_and_date(project: Path) -> pd.DataFrame:
    data = project / "data" / "credit.csv"
    frame = pd.read_csv(data)
    frame.insert(0, "applicant_id", range(100_000, 100_000 + len(frame)))
    frame.insert(1, "applied_on", pd.date_range("2026-01-01", periods=len(frame), freq="h").strftime("%Y-%m-%d %H:%M"))
    frame.to_csv(data, index=False)
    spec = project / DATASET_FILE
    spec.write_text(spec.read_text().replace("  columns:\n", "  columns:\n" + ROLES, 1))
    return frame


def test_ids_and_dates_are_validated_but_never_features_or_drift_inputs(project: Path, run):
    with_id_and_date(project)
    run("validate", "features")
    validation = json.loads((project / "artifacts/credit-risk-training/validation.json").read_text())
    assert validation["success"]
    checked = {(r["expectation"], r["column"]) for r in validation["expectations"]}
    assert ("expect_column_values_to_be_dateutil_parseable", "applied_on") in checked
    assert ("expect_column_values_to_be_unique", "applicant_id") in checked
    features = pd.read_parquet(project / "artifacts/credit-risk-training/features.parquet")
    assert not {"applicant_id", "applied_on"} & set(features.columns)
    specs = load_specs(project)
    inputs = model_inputs(specs.require(Dataset, "credit-applications"))
    assert "income" in inputs and not {"applicant_id", "applied_on"} & set(inputs)
    monitor = specs.require(Monitor, "credit-drift")
    assert "income" in monitored_features(specs.require(Dataset, "credit-applications"), monitor)
    assert not {"applicant_id", "applied_on"} & set(monitored_features(specs.require(Dataset, "credit-applications"), monitor))


def test_a_date_column_that_does_not_parse_fails_validation(project: Path, run):
    frame = with_id_and_date(project)
    frame.loc[[5, 9], "applied_on"] = "next tuesday-ish"
    frame.to_csv(project / "data" / "credit.csv", index=False)
    with pytest.raises(StageFailed) as failure:
        run("validate")
    assert "expect_column_values_to_be_dateutil_parseable" in str(failure.value) and "applied_on" in str(failure.value)


def test_a_feature_or_monitor_reading_an_id_or_date_is_refused_with_file_line_and_field(project: Path):
    with_id_and_date(project)
    spec = project / DATASET_FILE
    spec.write_text(spec.read_text().replace("    - name: region\n      transform: one_hot\n",
                                             "    - name: region\n      transform: one_hot\n"
                                             "    - name: applied_on\n      transform: one_hot\n"))
    monitor = next((project / "specs" / "monitors").glob("*.yaml"))
    monitor.write_text(monitor.read_text().replace("  schedule:", "  features: [income, applicant_id]\n  schedule:", 1))
    with pytest.raises(SpecErrors) as info:
        load_specs(project)
    errors = [str(e) for e in info.value.errors]
    feature = next(e for e in errors if "applied_on" in e)
    assert DATASET_FILE in feature and "spec.features[6].inputs" in feature
    assert "declared role: date" in feature and "never model inputs" in feature
    watched = next(e for e in errors if "applicant_id" in e)
    assert "spec.features[1]" in watched and "declared role: id" in watched


def test_a_role_on_the_target_or_a_bool_column_is_refused(project: Path):
    spec = project / DATASET_FILE
    spec.write_text(spec.read_text().replace("default: {type: int, allowed: [0, 1]}", "default: {type: int, role: id}")
                    .replace("  columns:\n", "  columns:\n    approved: {type: bool, role: date}\n", 1))
    with pytest.raises(SpecErrors) as info:
        load_specs(project)
    errors = "\n".join(str(e) for e in info.value.errors)
    assert "spec.columns.default.role: column 'default' is the target or a sensitive attribute, not an id" in errors
    assert "spec.columns.approved.role: column 'approved' is bool" in errors
