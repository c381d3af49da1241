"""Stage `register`: register the gated candidate, alias it, and attach lineage and a model card.

It registers in the environment's registry: inside an Azure ML job the workspace's (see
specops.registry.connect), where the aliases are version tags.

The new version always becomes `challenger`; it also becomes `champion` when
it beats the current champion on the selection metric (or there is none),
unless an Endpoint with a rollout serves the champion: then the rollout of
the challenger on live traffic promotes it, or not.
Registration refuses unless gate.json records a pass, so calling this stage
directly cannot sneak a failed candidate into the registry. The version also
gets the drift baseline: a summary of its raw inputs on the training rows, so
monitors compare each new window with it without re-reading the training data,
and the model's predictions and feature attribution on those rows (prediction
and feature-attribution drift compare with them).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from mlflow import MlflowClient

from specops.errors import StageFailed
from specops.lifecycle import lineage
from specops.lifecycle.candidates import SavedCandidate, saved_candidate
from specops.core.paths import ProjectPaths
from specops.lifecycle.production import with_rows as with_production_rows
from specops.lifecycle.context import StageContext, read_json, write_json
from specops.data import load_dataset
from specops.lifecycle.featurize import read_feature_table
from specops.gates import better
from specops.core.digests import data_hash
from specops.registry import CHALLENGER, CHAMPION, artifact_dir, champion_summary, connect, set_alias
from specops.monitoring.baseline import model_inputs, summarize_features
from specops.monitoring.drift import BaselineSummary
from specops.spec.endpoints import Endpoint, champion_rollout
from specops.monitoring.model_baseline import ModelBaseline, model_baseline
from specops.spec.monitors import is_categorical

TEMPLATES = Path(__file__).parent / "templates"


def run(ctx: StageContext) -> None:
    gate = read_json(ctx.paths, ctx.paths.gate, "gate")
    if not gate["passed"]:
        raise StageFailed(f"gate {gate['gate']} did not pass for candidate {gate['selected']} "
                          f"(see {ctx.paths.rel(ctx.paths.gate)}); nothing was registered")
    candidate = saved_candidate(ctx.paths, gate["selected"])
    evaluation = read_json(ctx.paths, ctx.paths.evaluation, "evaluate")["candidates"][candidate.id]
    record = lineage_record(ctx, candidate, gate)
    # Before registering: a data problem here must not leave a version without its baseline.
    baseline = training_baseline(ctx)
    predicted = training_model_baseline(ctx, candidate)
    client = connect(ctx.specs)
    model_name = ctx.pipeline.spec.model_name
    promote = should_promote(client, model_name, gate["selection"], champion_rollout(ctx.specs, model_name))
    version = mlflow.register_model(candidate.model_uri, model_name, tags=lineage.lineage_tags(record)).version
    set_alias(client, model_name, CHALLENGER, version)
    if promote:
        set_alias(client, model_name, CHAMPION, version)
    aliases = [CHALLENGER, CHAMPION] if promote else [CHALLENGER]
    card = model_card(ctx, model_name, version, aliases, gate, evaluation, record)
    store_records(ctx, client, candidate, version, record, card)
    store_baseline(ctx, client, candidate, version, baseline, predicted)
    store_sbom(client, candidate, model_name, version)
    write_json(ctx.paths.registration, {"model": model_name, "version": version, "aliases": aliases,
                                        "run_id": candidate.run_id, "model_uri": candidate.model_uri})
    print(f"registered {model_name} version {version} as {' and '.join(aliases)}")


def should_promote(client: MlflowClient, model_name: str, selection: dict[str, Any], rollout: Endpoint | None) -> bool:
    champion = champion_summary(client, model_name)
    if champion is None:
        return True  # the first version: an endpoint needs a champion to serve at all
    if rollout is not None:
        print(f"{model_name}: endpoint {rollout.name} serves the champion with a rollout; its promotion decides")
        return False
    if selection["metric"] not in champion["metrics"]:
        return True
    return better(selection["value"], champion["metrics"][selection["metric"]], selection["goal"])


def lineage_record(ctx: StageContext, candidate: SavedCandidate, gate: dict[str, Any]) -> dict[str, Any]:
    split = read_json(ctx.paths, ctx.paths.split, "train")
    feature_set = ctx.feature_set
    return {
        "pipeline": ctx.pipeline.name,
        "task": ctx.pipeline.spec.task,
        "run_id": candidate.run_id,
        "data": {"dataset": ctx.dataset.name, **data_hash(ctx.root, ctx.dataset.spec.path), **production_rows(ctx)},
        "git": lineage.git_state(ctx.root),
        "code_sha256": lineage.code_hash(ctx.root),
        "requirements_lock_sha256": lineage.environment_lock_hash(ctx.root),
        "params": {"estimator": ctx.pipeline.spec.estimator, "seed": split["seed"], "test_size": split["test_size"],
                   **candidate.params},
        "feature_set": {"name": feature_set.name, "version": feature_set.spec.version, "owner": feature_set.spec.owner},
        "gate": {"name": gate["gate"], "passed": gate["passed"], "checks": gate["checks"]},
    }


def production_rows(ctx: StageContext) -> dict[str, Any]:
    """The labelled production rows the model also trained on (spec.feedback), as DVC recorded them."""
    if ctx.pipeline.spec.feedback is None:
        return {}
    path = ProjectPaths(ctx.root).production_rows(ctx.pipeline.name)
    if not path.exists():
        return {}
    relative = path.relative_to(ctx.root).as_posix()
    rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
    return {"production_rows": {**data_hash(ctx.root, relative), "rows": rows, "endpoint": ctx.pipeline.spec.feedback.endpoint}}


def model_card(ctx: StageContext, model_name: str, version: str, aliases: list[str], gate: dict[str, Any],
               evaluation: dict[str, Any], record: dict[str, Any]) -> str:
    # The card is Markdown: escaping is on for HTML/XML templates only (HTML entities would corrupt Markdown).
    environment = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                              autoescape=select_autoescape(("html", "htm", "xml")),
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template("model_card.md.j2").render(
        model=model_name, version=version, aliases=aliases,
        pipeline=ctx.pipeline, dataset=ctx.dataset, sensitive=ctx.sensitive_column,
        gate=gate, metrics=evaluation["metrics"], by_group=evaluation.get("by_group", {}), lineage=record,
    )


def store_records(ctx: StageContext, client: MlflowClient, candidate: SavedCandidate, version: str,
                  record: dict[str, Any], card: str) -> None:
    folder = artifact_dir(version)
    client.log_text(candidate.run_id, json.dumps(record, indent=2, default=str), f"{folder}/lineage.json")
    client.log_text(candidate.run_id, card, f"{folder}/model_card.md")
    ctx.paths.model_card.parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.model_card.write_text(card, encoding="utf-8")


def training_baseline(ctx: StageContext) -> BaselineSummary:
    """The drift baseline: the raw model inputs on the rows the model was trained on (not the test rows)."""
    split = read_json(ctx.paths, ctx.paths.split, "train")
    frame, _ = with_production_rows(ctx.root, ctx.pipeline, load_dataset(ctx.root, ctx.dataset.spec))  # as features read them
    training_rows = frame.drop(index=frame.index[split["test_rows"]])
    return summarize_features(training_rows, model_inputs(ctx.dataset))


def training_model_baseline(ctx: StageContext, candidate: SavedCandidate) -> ModelBaseline:
    """The model's predictions and feature attribution on its training rows: prediction and attribution drift compare with it."""
    split = read_json(ctx.paths, ctx.paths.split, "train")
    table = read_feature_table(ctx.paths)
    training = table.inputs.drop(index=table.frame.index[split["test_rows"]])
    target = ctx.dataset.spec.columns[ctx.dataset.spec.target]
    return model_baseline(candidate.load_model(ctx.paths), training, is_categorical(target), seed=split["seed"])


def store_baseline(ctx: StageContext, client: MlflowClient, candidate: SavedCandidate, version: str,
                   baseline: BaselineSummary, predicted: ModelBaseline) -> None:
    path = baseline.save(ctx.paths.baseline)
    client.log_artifact(candidate.run_id, str(path), artifact_dir(version))
    # Only in MLflow: the stage's declared outputs (which DVC keeps out of git) do not include them.
    with tempfile.TemporaryDirectory() as folder:
        for path in predicted.save(Path(folder)):
            client.log_artifact(candidate.run_id, str(path), artifact_dir(version))


def store_sbom(client: MlflowClient, candidate: SavedCandidate, model_name: str, version: str) -> None:
    """A CycloneDX SBOM of the environment that trained the version, in its run; the version's tags point at it."""
    from specops.lifecycle.sbom import ARTIFACT, environment_sbom  # cyclonedx is imported only when registering

    sbom = environment_sbom(model_name, version)
    path = f"{artifact_dir(version)}/{ARTIFACT}"
    client.log_text(candidate.run_id, sbom.text, path)
    client.set_model_version_tag(model_name, version, "sbom.path", path)
    client.set_model_version_tag(model_name, version, "sbom.sha256", sbom.sha256)
