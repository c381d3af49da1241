"""Labelled production rows: what an endpoint answered, with the ground truth fed back, as training rows.

A Pipeline with `spec.feedback` retrains on its Dataset's rows plus these: on each retraining
(`LocalBackend.run_pipeline` with a reason) the endpoint's inference log is joined with its
/feedback labels, and every live answer younger than `max_age` that got a label becomes a row
of the Dataset's own columns (the raw inputs, the sensitive attributes the caller sent, the label
as the target) in `.specops/feedback/<pipeline>.csv`. That file is a DVC dependency of the
features stage, so the rows a model was trained on are recorded in dvc.lock; it lives under
.specops/ (git-ignored) because it holds what clients sent. Mirrored (shadow) answers are left
out: the live answer to the same request is already there.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from specops.core.durations import seconds
from specops.core.files import atomic_write
from specops.core.paths import ProjectPaths
from specops.serving.inference_log import read_log
from specops.spec import Dataset, Pipeline, SpecSet


def columns(specs: SpecSet, pipeline: Pipeline) -> list[str]:
    """The Dataset's columns the rows carry: every declared one, in declaration order."""
    return list(specs.require(Dataset, pipeline.spec.dataset).spec.columns)


def export(specs: SpecSet, pipeline: Pipeline, now: float | None = None) -> int:
    """Write the labelled live answers within `max_age` to the pipeline's production rows file; the count."""
    feedback = pipeline.spec.feedback
    assert feedback is not None, "export is for pipelines with spec.feedback"
    dataset = specs.require(Dataset, pipeline.spec.dataset).spec
    since = (time.time() if now is None else now) - seconds(feedback.max_age)
    records = read_log(ProjectPaths(specs.root).endpoint(feedback.endpoint), since=since)
    rows = [{**r["inputs"], **r.get("sensitive", {}), dataset.target: r["label"]}
            for r in records if "label" in r and not r.get("shadow")]
    frame = pd.DataFrame(rows, columns=columns(specs, pipeline))
    atomic_write(ProjectPaths(specs.root).production_rows(pipeline.name), frame.to_csv(index=False))
    return len(frame)


def ensure(specs: SpecSet, pipeline: Pipeline) -> None:
    """A header-only file where no retraining exported rows yet: the features stage's dependency must exist."""
    path = ProjectPaths(specs.root).production_rows(pipeline.name)
    if pipeline.spec.feedback is not None and not path.exists():
        atomic_write(path, ",".join(columns(specs, pipeline)) + "\n")


def read(root: Path, pipeline: Pipeline) -> pd.DataFrame | None:
    """The exported rows (None: the pipeline takes none, or none were exported)."""
    path = ProjectPaths(root).production_rows(pipeline.name)
    if pipeline.spec.feedback is None or not path.exists():
        return None
    frame = pd.read_csv(path)
    return frame if len(frame) else None


def with_rows(root: Path, pipeline: Pipeline, raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The Dataset's rows followed by the exported production rows (in the Dataset's columns), and how many joined.
    Every stage that reads the training rows reads them through this: features, and register's drift baseline."""
    rows = read(root, pipeline)
    if rows is None:
        return raw, 0
    return pd.concat([raw, rows.reindex(columns=raw.columns)], ignore_index=True), len(rows)
