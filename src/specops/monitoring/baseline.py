"""Where a monitor's baseline summary comes from: the champion's stored one, or a data set's (cached).

The register stage summarises the model's raw inputs on its training rows and
stores the summary with the model version, so a monitor run reads only the
new window; a Dataset baseline is summarised once per data file and cached.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from typing import Literal

import pandas as pd

from specops.errors import SpecopsError
from specops.core.digests import file_digest
from specops.data import load_dataset
from specops.core.paths import BASELINE_FILE
from specops.registry import CHAMPION, artifact_dir, connect, version_by_alias
from specops.monitoring.drift import BaselineSummary, summarize
from specops.spec.kinds import Dataset
from specops.spec.loader import SpecSet
from specops.spec.monitors import Monitor, baseline_dataset, is_categorical, monitored_features

FeatureTypes = dict[str, Literal["numerical", "categorical"]]


def model_inputs(dataset: Dataset) -> FeatureTypes:
    """The raw columns a model of this data set may read: all but the label, the sensitive columns, ids and dates."""
    columns = dataset.spec.columns
    return {name: "categorical" if is_categorical(column) else "numerical" for name, column in columns.items()
            if dataset.spec.is_input(name)}


def summarize_features(frame: pd.DataFrame, features: FeatureTypes) -> BaselineSummary:
    return summarize(frame, numeric=[n for n, t in features.items() if t == "numerical"],
                     categorical=[n for n, t in features.items() if t == "categorical"])


def restrict(summary: BaselineSummary, features: FeatureTypes) -> BaselineSummary:
    """The stored summary covers every model input; a monitor may watch fewer."""
    missing = sorted(set(features) - set(summary.numeric) - set(summary.categorical))
    if missing:
        raise SpecopsError(f"the stored baseline has no summary of feature(s) {', '.join(missing)}")
    return BaselineSummary(summary.rows, {n: b for n, b in summary.numeric.items() if n in features},
                           {n: b for n, b in summary.categorical.items() if n in features})


def monitor_baseline(specs: SpecSet, monitor: Monitor) -> BaselineSummary:
    dataset = baseline_dataset(specs, monitor)
    features = monitored_features(dataset, monitor)
    champion_model = monitor.spec.baseline.champion
    if champion_model is not None:
        return restrict(champion_baseline(specs, champion_model), features)
    return dataset_baseline(specs, monitor, dataset, features)


def champion_baseline(specs: SpecSet, model_name: str) -> BaselineSummary:
    """The summary the register stage stored with the model's current champion version."""
    client = connect(specs)
    champion = version_by_alias(client, model_name, CHAMPION)
    if champion is None:
        raise SpecopsError(f"model {model_name!r} has no champion yet: nothing to compare production data with")
    artifact = f"{artifact_dir(champion.version)}/{BASELINE_FILE}"
    missing = SpecopsError(f"{model_name} champion v{champion.version} has no stored baseline summary ({artifact}): "
                           f"retrain it, or give the monitor a dataset baseline")
    if champion.run_id is None:  # registered outside a run: nothing stored with it
        raise missing
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = client.download_artifacts(champion.run_id, artifact, folder)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise missing from exc
        return BaselineSummary.load(local)


def dataset_baseline(specs: SpecSet, monitor: Monitor, dataset: Dataset, features: FeatureTypes) -> BaselineSummary:
    """Summarise the data set once per file content and feature list; later runs load the cache."""
    path = specs.root / dataset.spec.path
    md5 = file_digest(path, "md5")
    if md5 is None:
        raise SpecopsError(f"monitor {monitor.name}: baseline data file {dataset.spec.path} does not exist")
    key = hashlib.sha256(json.dumps([md5, features], sort_keys=True).encode()).hexdigest()[:16]
    cached = specs.paths.monitor(monitor.name) / f"baseline-{key}.npz"
    if cached.exists():
        return BaselineSummary.load(cached)
    summary = summarize_features(load_dataset(specs.root, dataset.spec), features)
    cached.parent.mkdir(parents=True, exist_ok=True)
    summary.save(cached)
    return summary
