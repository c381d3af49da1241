"""Cross-references between documents: what a single model cannot see.

Each check is a function SpecSet -> errors, registered with `@check`, so later
kinds add their own without touching the loader.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import yaml

from specops.errors import SpecError
from specops.spec.kinds import (
    TASK_FAIRNESS_METRICS,
    Dataset,
    Document,
    FeatureSet,
    Gate,
    Pipeline,
    Project,
    task_metrics,
)
from specops.spec.loader import Path_, SpecSet
from specops.spec.secrets import ADVICE, find_secrets
from specops.spec.sweeps import PARAMS_FILE, budget_errors, params_lines, parse_space

Check = Callable[[SpecSet], Iterable[SpecError]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def cross_check(specs: SpecSet) -> list[SpecError]:
    return [error for fn in CHECKS for error in fn(specs)]


def produced_metrics(specs: SpecSet, pipeline: Pipeline) -> set[str]:
    """Metric names a run of this pipeline produces, for gates and selection."""
    task = pipeline.spec.task
    dataset = specs.get(Dataset, pipeline.spec.dataset)
    target = dataset.spec.columns.get(dataset.spec.target) if dataset is not None else None
    metrics = set(task_metrics(task, target.allowed if target is not None else None))
    if dataset is not None and dataset.spec.sensitive:
        metrics |= set(TASK_FAIRNESS_METRICS[task])
    for step in pipeline.spec.steps:
        metrics |= set(step.metrics)
    return metrics


def model_task(specs: SpecSet, model: str | None) -> str:
    """The task of the pipeline that registers `model` (binary when no pipeline does: a model from elsewhere)."""
    pipeline = next((p for p in specs.of_kind(Pipeline) if p.spec.model_name == model), None)
    return pipeline.spec.task if pipeline else "binary"


def registered_models(specs: SpecSet) -> set[str]:
    return {p.spec.model_name for p in specs.of_kind(Pipeline)}


def missing_reference(specs: SpecSet, doc: Document, path: Path_, kind: type[Document], name: str) -> list[SpecError]:
    if specs.get(kind, name) is not None or f"{kind.__name__}/{name}" in specs.broken:
        return []
    return [specs.error(doc, path, specs.unknown(kind, name))]


@check
def promotions(specs: SpecSet) -> Iterable[SpecError]:
    """An environment promoted from another takes what a training azureml environment promoted."""
    if not specs.of_kind(Project):
        return  # the Project itself is invalid, and said so
    environments = specs.project.spec.environments
    for name, environment in environments.items():
        promotion = environment.promotion
        if promotion is None:
            continue
        source = environments.get(promotion.source)
        at = ("spec", "environments", name, "promotion", "source")
        if source is None or promotion.source == name:
            yield specs.error(specs.project, at, f"{promotion.source!r} must name another environment "
                                                 f"({', '.join(sorted(set(environments) - {name}))})")
        elif source.backend != "azureml" or source.promotion is not None:
            yield specs.error(specs.project, at, f"{promotion.source!r} must be an azureml environment that trains "
                                                 "(not local, not one promoted from another)")


@check
def datasets(specs: SpecSet) -> Iterable[SpecError]:
    produced = {out for p in specs.of_kind(Pipeline) for step in p.spec.steps for out in step.outs}
    for ds in specs.of_kind(Dataset):
        if ds.spec.target not in ds.spec.columns:
            yield specs.error(ds, ("spec", "target"), f"column {ds.spec.target!r} is not declared in spec.columns")
        for i, col in enumerate(ds.spec.sensitive):
            if col not in ds.spec.columns:
                yield specs.error(ds, ("spec", "sensitive", i), f"column {col!r} is not declared in spec.columns")
        yield from _column_roles(specs, ds)
        if ds.spec.path in produced:
            continue
        try:
            found = (specs.root / ds.spec.path).exists()
        except OSError as exc:  # a name too long for the file system, say
            yield specs.error(ds, ("spec", "path"), f"data file path cannot be used: {exc.strerror or exc}")
            continue
        if not found:
            yield specs.error(ds, ("spec", "path"), f"data file {ds.spec.path!r} does not exist and no pipeline step produces it")


def _column_roles(specs: SpecSet, ds: Dataset) -> Iterable[SpecError]:
    for name, column in ds.spec.columns.items():
        at = ("spec", "columns", name, "role")
        if column.role == "input":
            continue
        if name == ds.spec.target or name in ds.spec.sensitive:
            yield specs.error(ds, at, f"column {name!r} is the target or a sensitive attribute, not an {column.role}")
        elif column.type == "bool":
            yield specs.error(ds, at, f"column {name!r} is bool: an id or a date is text or a number")


@check
def feature_sets(specs: SpecSet) -> Iterable[SpecError]:
    for fs in specs.of_kind(FeatureSet):
        yield from missing_reference(specs, fs, ("spec", "dataset"), Dataset, fs.spec.dataset)
        dataset = specs.get(Dataset, fs.spec.dataset)
        if dataset is None:
            continue
        ds = dataset.spec
        forbidden = {ds.target, *ds.sensitive}
        for i, feature in enumerate(fs.spec.features):
            for src in feature.sources:
                if src not in ds.columns:
                    yield specs.error(fs, ("spec", "features", i, "inputs"), f"column {src!r} is not in dataset {fs.spec.dataset!r}")
                elif src in forbidden:
                    yield specs.error(fs, ("spec", "features", i, "inputs"),
                                      f"column {src!r} is the target or a sensitive attribute; it cannot be a model input")
                elif ds.columns[src].role != "input":
                    yield specs.error(fs, ("spec", "features", i, "inputs"),
                                      f"column {src!r} is declared role: {ds.columns[src].role} in dataset {fs.spec.dataset!r}; "
                                      "ids and dates are never model inputs")
            if feature.transform in ("ratio", "difference", "product") and len(feature.sources) != 2:
                yield specs.error(fs, ("spec", "features", i, "inputs"), f"transform {feature.transform} needs exactly two inputs")
            if feature.transform == "bucketize" and "edges" not in feature.params:
                yield specs.error(fs, ("spec", "features", i, "params"), "transform bucketize needs params.edges")
        names = [f.name for f in fs.spec.features]
        for i, name in enumerate(names):
            if name in names[:i]:
                yield specs.error(fs, ("spec", "features", i, "name"), f"duplicate feature {name!r}")


@check
def pipelines(specs: SpecSet) -> Iterable[SpecError]:
    owners: dict[str, str] = {}
    for p in specs.of_kind(Pipeline):
        s = p.spec
        yield from missing_reference(specs, p, ("spec", "dataset"), Dataset, s.dataset)
        yield from missing_reference(specs, p, ("spec", "feature_set"), FeatureSet, s.feature_set)
        yield from missing_reference(specs, p, ("spec", "gate"), Gate, s.gate)
        fs = specs.get(FeatureSet, s.feature_set)
        if fs is not None and fs.spec.dataset != s.dataset:
            yield specs.error(p, ("spec", "feature_set"),
                              f"feature set {fs.name!r} is built on dataset {fs.spec.dataset!r}, not {s.dataset!r}")
        if s.model_name in owners:
            yield specs.error(p, ("spec", "model_name"),
                              f"model {s.model_name!r} is already registered by pipeline {owners[s.model_name]!r}")
        owners.setdefault(s.model_name, p.name)
        yield from _task_fits_target(specs, p)
        produced = produced_metrics(specs, p)
        if s.selection.metric not in produced:
            yield specs.error(p, ("spec", "selection", "metric"),
                              f"no step produces metric {s.selection.metric!r} (produced: {', '.join(sorted(produced))})")
        gate = specs.get(Gate, s.gate)
        if gate is not None:
            for i, c in enumerate(gate.spec.checks):
                if c.slo is None and c.metric not in produced:  # an SLO check reads its budget, not a run
                    yield specs.error(gate, ("spec", "checks", i, "metric"),
                                      f"no step of pipeline {p.name!r} produces metric {c.metric!r} "
                                      f"(produced: {', '.join(sorted(produced))})")
        yield from _steps(specs, p)


@check
def secret_literals(specs: SpecSet) -> Iterable[SpecError]:
    """No value may look like a secret: keys, tokens and connection strings belong in ${VAR} references."""
    for doc in specs.documents:
        data = doc.model_dump(mode="json", exclude_unset=True)
        for path, name, what in find_secrets(data):
            yield specs.error(doc, path, f"{name!r} looks like {what}; {ADVICE}")


def _task_fits_target(specs: SpecSet, p: Pipeline) -> Iterable[SpecError]:
    """What the declared target column allows: regression needs numbers, binary exactly two classes."""
    dataset = specs.get(Dataset, p.spec.dataset)
    column = dataset.spec.columns.get(dataset.spec.target) if dataset is not None else None
    if dataset is None or column is None:
        return
    target, task = f"target {dataset.spec.target!r} of dataset {dataset.name!r}", p.spec.task
    if task == "regression" and column.type not in ("int", "float"):
        yield specs.error(p, ("spec", "task"), f"task regression needs a numeric target; {target} is of type {column.type}")
    elif task == "regression" and column.allowed is not None and len(column.allowed) <= 2:
        yield specs.error(p, ("spec", "task"), f"task regression on {target}, which allows only {column.allowed}: "
                                               "use task binary")
    elif task != "regression" and column.type == "float" and column.allowed is None:
        yield specs.error(p, ("spec", "task"), f"task {task} needs classes, but {target} is a float with no `allowed` "
                                               "values: use task regression, or declare the classes")
    elif task == "binary" and column.allowed is not None and len(column.allowed) != 2:
        yield specs.error(p, ("spec", "task"), f"task binary needs two classes; {target} allows {len(column.allowed)}: "
                                               f"{column.allowed} (task multiclass?)")
    elif task == "multiclass" and column.allowed is not None and len(column.allowed) < 3:
        yield specs.error(p, ("spec", "task"), f"task multiclass on {target}, which allows {column.allowed}: use task binary")


def _steps(specs: SpecSet, p: Pipeline) -> Iterable[SpecError]:
    names = [step.name for step in p.spec.steps]
    for i, step in enumerate(p.spec.steps):
        if step.name in names[:i]:
            yield specs.error(p, ("spec", "steps", i, "name"), f"duplicate step {step.name!r}")
        for j, need in enumerate(step.needs):
            if need not in names:
                yield specs.error(p, ("spec", "steps", i, "needs", j), f"no step named {need!r}")
    cycle = find_cycle({s.name: s.needs for s in p.spec.steps})
    if cycle:
        index = names.index(cycle[0])
        yield specs.error(p, ("spec", "steps", index, "needs"), f"steps form a cycle: {' -> '.join(cycle)}")


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """Return one cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt in graph and state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


@check
def sweeps(specs: SpecSet) -> Iterable[SpecError]:
    """A search space that is empty, malformed, or that the sampling algorithm cannot search within its budget."""
    for pipeline in specs.of_kind(Pipeline):
        yield from sweep_errors(specs, pipeline)


def sweep_errors(specs: SpecSet, pipeline: Pipeline) -> list[SpecError]:
    path = specs.root / PARAMS_FILE
    if not path.is_file():
        return []  # the train stage says which file and section it needs
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return []  # the train stage reports the syntax error with its position
    section = document.get(pipeline.spec.params) if isinstance(document, dict) else None
    declared = section.get("sweep") if isinstance(section, dict) else None
    if not isinstance(declared, dict):
        declared = {}
    lines = params_lines(text)
    space, errors = parse_space(pipeline.spec.params, declared, lines)
    return errors + budget_errors(pipeline, space, lines, lambda at, message: specs.error(pipeline, at, message))
