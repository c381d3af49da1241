"""A deliberately bad challenger, for the demo's automatic rollback.

A forest fit on *inverted* labels: every request still gets a well-formed
answer (no error, normal latency), so only analysis on labelled feedback can
tell it is wrong. It is registered directly as `challenger`, as a model that
slipped past offline checks would be (say, a label join broken in training
data the gate also read).

    python -m credit_risk.bad_model [--root .]
"""
from __future__ import annotations

import argparse
from pathlib import Path

MODEL = "credit-risk"


def register_bad_challenger(root: Path | str) -> str:
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from specops.features.transforms import compute_features
    from specops.registry import connect, use_experiment
    from specops.project import Project
    from specops.spec import Dataset, FeatureSet

    specs = Project(root).specs
    client = connect(specs)  # also points MLflow's tracking and registry at the project's store
    dataset, feature_set = specs.get(Dataset, "credit-applications"), specs.get(FeatureSet, "credit-features")
    data = pd.read_csv(Path(specs.root) / dataset.spec.path)
    features = compute_features(data, feature_set.spec, dataset.spec)
    model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(features, 1 - data[dataset.spec.target])
    use_experiment(specs, "credit-risk-bad-challenger")  # artifacts where the project keeps them
    with mlflow.start_run(run_name="inverted-labels"):
        info = mlflow.sklearn.log_model(model, name="model", input_example=features.head(2),
                                        pip_requirements=["scikit-learn"], serialization_format="pickle")
    tags = {"lineage.feature_set": f"{feature_set.name}@v{feature_set.spec.version}", "demo": "deliberately bad"}
    version = str(mlflow.register_model(info.model_uri, MODEL, tags=tags).version)
    client.set_registered_model_alias(MODEL, "challenger", version)
    return version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    version = register_bad_challenger(parser.parse_args(argv).root)
    print(f"registered {MODEL} version {version} (inverted labels) as challenger")


if __name__ == "__main__":
    main()
