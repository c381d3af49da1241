"""Run a rendered Azure ML PipelineJob the way Azure ML runs it, against the stand-in workspace.

The YAML is loaded with the SDK's own `azure.ai.ml.load_job` (no second parser). Nodes run in
dependency order (the `${{parent.jobs.<node>.outputs.<name>}}` bindings), each the way a command job
runs on Azure ML compute:

- a fresh working directory holding only the component's `code:` snapshot (what the SDK would upload:
  the folder, less what `.amlignore`, else `.gitignore`, leaves out);
- each input bound as a path: a read-only copy of the data asset or of the upstream node's output
  (a node that writes into it fails, as it would on a read-only mount); each output a fresh empty folder;
- `${{inputs.*}}`, `${{outputs.*}}` and `${{search_space.*}}` substituted in the command, `${{parent.*}}`
  resolved in the bindings; anything left unresolved fails the node, as the service rejects it;
- the environment Azure ML gives a job and nothing of the caller's: MLFLOW_TRACKING_URI (the stand-in),
  MLFLOW_RUN_ID of a run created for the node (a child of the pipeline's run), MLFLOW_EXPERIMENT_ID and
  _NAME, AZUREML_RUN_ID, AZUREML_ARM_* (and AZUREML_SWEEP_<param> in a sweep trial), PATH with the
  Environment's python (here the project's .venv) first.

A component that is `is_deterministic` (the SDK's default) is reused, as Azure ML reuses it: when the
workspace already ran the same component (command, environment, code snapshot) on the same inputs, the
node does not run again and hands on that run's outputs (`NodeRun.reused`).

Sweep nodes expand the search space (grid: every choice combination; random: sampled with the rendered
seed), run each trial, read the primary metric from the trial's MLflow run, fail as Azure ML does when
no trial logged it, and pass the best trial's outputs on.
"""
from __future__ import annotations

import fnmatch
import hashlib
import itertools
import math
import os
import random
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.azureml.emulator.workspace import Workspace

EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "emulated-rg"
WORKSPACE = "emulated-ws"
ALWAYS_IGNORED = (".git", ".amlignore")


class JobFailed(Exception):
    """A node (or the sweep's selection) failed; the message is what Azure ML would show."""

    def __init__(self, node: str, message: str, log: str = "") -> None:
        super().__init__(f"{node}: {message}" + (f"\n--- log (tail) ---\n{log[-4000:]}" if log else ""))
        self.node = node
        self.reason = message
        self.log = log


@dataclass
class TrialRun:
    params: dict[str, Any]
    run_id: str
    outputs: dict[str, Path]
    metric: float | None = None
    seconds: float = 0.0


@dataclass
class NodeRun:
    name: str
    run_id: str
    outputs: dict[str, Path]
    command: str = ""
    seconds: float = 0.0
    trials: list[TrialRun] = field(default_factory=list)
    best: TrialRun | None = None
    reused: bool = False


@dataclass
class PipelineRun:
    run_id: str
    experiment_id: str
    nodes: dict[str, NodeRun] = field(default_factory=dict)


def run_pipeline_job(yaml_path: Path, workspace: Workspace, *, data: Mapping[str, Path], python: Path, workdir: Path,
                     max_parallel_trials: int = 2, timeout_s: float = 600) -> PipelineRun:
    """Run every node of the pipeline job in `yaml_path`; raise JobFailed at the first failure.

    data: data asset name -> local file or folder (what the workspace's datastore holds for it).
    python: the interpreter of the job's Environment (its folder goes first on PATH, as `python`).
    """
    from azure.ai.ml import load_job

    job = load_job(yaml_path)
    client = workspace.client()
    experiment = job.experiment_name or "Default"
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name=job.display_name, tags={"azureml.runsource": "azureml.PipelineRun"})
    pipeline = PipelineRun(parent.info.run_id, experiment_id)
    runner = _Runner(workspace, client, pipeline, experiment, python, workdir / parent.info.run_id, timeout_s)
    inputs = {name: _asset(name, value, data) for name, value in job.inputs.items()}
    try:
        for name in _order(job.jobs):
            node = job.jobs[name]
            bindings = {k: _binding(v, inputs, pipeline) for k, v in node.inputs.items() if _bound(v)}
            if node.type == "sweep":
                pipeline.nodes[name] = runner.sweep(name, node, bindings, max_parallel_trials)
            elif node.type == "command":
                pipeline.nodes[name] = runner.command(name, node.component, bindings, parent_run=pipeline.run_id)
            else:
                raise JobFailed(name, f"node type {node.type!r} is not emulated")
    except JobFailed:
        client.set_terminated(pipeline.run_id, "FAILED")
        raise
    client.set_terminated(pipeline.run_id, "FINISHED")
    return pipeline


# --- the job graph ----------------------------------------------------------------------------------

def _bound(value: Any) -> bool:
    data = getattr(value, "_data", value)
    return data is not None


def _upstream(node: Any) -> set[str]:
    found = set()
    for value in node.inputs.values():
        text = str(getattr(getattr(value, "_data", None), "path", getattr(value, "_data", "")) or "")
        found.update(re.findall(r"parent\.jobs\.([A-Za-z_][\w]*)\.outputs", text))
    return found


def _order(jobs: Mapping[str, Any]) -> list[str]:
    """Dependency order (ties in declaration order); a cycle or an unknown node fails the job."""
    pending = {name: _upstream(node) for name, node in jobs.items()}
    for name, deps in pending.items():
        unknown = deps - set(jobs)
        if unknown:
            raise JobFailed(name, f"binds outputs of unknown node(s) {sorted(unknown)}")
    done: list[str] = []
    while pending:
        ready = [n for n, deps in pending.items() if deps <= set(done)]
        if not ready:
            raise JobFailed(next(iter(pending)), "the pipeline's nodes form a cycle")
        done.append(ready[0])
        del pending[ready[0]]
    return done


def _asset(name: str, value: Any, data: Mapping[str, Path]) -> Path | Any:
    from azure.ai.ml import Input

    raw = getattr(value, "_data", value)
    if not isinstance(raw, Input):
        return raw  # a literal pipeline input (a string, a number): passed as it is
    path = raw.path
    if not isinstance(path, str):
        return path
    asset = path.removeprefix("azureml:").split(":")[0].split("@")[0]
    if asset not in data:
        raise JobFailed("pipeline", f"input {name!r} refers to data asset {path!r}, which the emulated datastore does not hold")
    return data[asset]


def _binding(value: Any, inputs: Mapping[str, Any], pipeline: PipelineRun) -> Any:
    data = getattr(value, "_data", value)
    text = getattr(data, "path", data)
    if not isinstance(text, str):
        return text
    match = EXPRESSION.fullmatch(text.strip())
    if match is None:
        return text
    expression = match.group(1)
    if m := re.fullmatch(r"parent\.inputs\.(\w+)", expression):
        return inputs[m.group(1)]
    if m := re.fullmatch(r"parent\.jobs\.(\w+)\.outputs\.(\w+)", expression):
        return pipeline.nodes[m.group(1)].outputs[m.group(2)]
    raise JobFailed("pipeline", f"cannot resolve binding ${{{{{expression}}}}}")


# --- running nodes ------------------------------------------------------------------------------------

@dataclass
class _Runner:
    workspace: Workspace
    client: Any
    pipeline: PipelineRun
    experiment: str
    python: Path
    workdir: Path
    timeout_s: float

    def command(self, name: str, component: Any, bindings: Mapping[str, Any], parent_run: str,
                search_space: Mapping[str, Any] | None = None, folder: str | None = None) -> NodeRun:
        started = time.monotonic()
        base = self.workdir / (folder or name)
        reuse_key = _reuse_key(component, bindings, search_space or {})
        if getattr(component, "is_deterministic", True) and reuse_key in self.workspace.reusable:
            run_id, outputs = self.workspace.reusable[reuse_key]
            return NodeRun(name, run_id, outputs, component.command, time.monotonic() - started, reused=True)
        run = self.client.create_run(self.pipeline.experiment_id, run_name=folder or name,
                                     tags={"mlflow.parentRunId": parent_run})
        run_id = run.info.run_id
        wd = base / "wd"
        _snapshot(_code_folder(component), wd)
        values: dict[str, str] = {}
        read_only: dict[Path, str] = {}
        for key, spec in component.inputs.items():
            if key in (search_space or {}):
                values[key] = _scalar(search_space[key])  # type: ignore[index]
                continue
            if key not in bindings:
                if getattr(spec, "optional", False):
                    continue
                raise JobFailed(name, f"required input {key!r} is not bound")
            bound = bindings[key]
            if isinstance(bound, Path):
                copy = _read_only_copy(bound, base / "inputs" / key)
                read_only[copy] = _digest(copy)
                values[key] = str(copy)
            else:
                values[key] = _scalar(bound)
        outputs = {key: base / "outputs" / key for key in component.outputs}
        for path in outputs.values():
            path.mkdir(parents=True)
        command = _substitute(name, component.command, values, outputs, search_space or {})
        env = self._environment(run_id, search_space or {}, base)
        log_path = base / "std_log.txt"
        with log_path.open("wb") as log:
            try:
                done = subprocess.run(["bash", "-c", command], cwd=wd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=self.timeout_s)
                returncode = done.returncode
            except subprocess.TimeoutExpired:
                returncode = -1
        log_text = log_path.read_text(errors="replace")
        if returncode != 0:
            self.client.set_terminated(run_id, "FAILED")
            raise JobFailed(name, f"the command exited {returncode}", log_text)
        for copy, digest in read_only.items():
            if _digest(copy) != digest:
                self.client.set_terminated(run_id, "FAILED")
                raise JobFailed(name, f"wrote into its read-only input {copy.parent.name} (a read-only mount on Azure ML)")
        self.client.set_terminated(run_id, "FINISHED")
        self.workspace.reusable[reuse_key] = (run_id, outputs)
        return NodeRun(name, run_id, outputs, command, time.monotonic() - started)

    def _environment(self, run_id: str, search_space: Mapping[str, Any], base: Path) -> dict[str, str]:
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": f"{self.python.parent}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "MLFLOW_TRACKING_URI": self.workspace.tracking_uri,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": self.pipeline.experiment_id,
            "MLFLOW_EXPERIMENT_NAME": self.experiment,
            "AZUREML_RUN_ID": run_id,
            "AZUREML_ROOT_RUN_ID": self.pipeline.run_id,
            "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
            "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP,
            "AZUREML_ARM_WORKSPACE_NAME": WORKSPACE,
            "AZUREML_ARM_PROJECT_NAME": self.experiment,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        env.update({f"AZUREML_SWEEP_{k}": _scalar(v) for k, v in search_space.items()})
        return env

    def sweep(self, name: str, node: Any, bindings: Mapping[str, Any], max_parallel: int) -> NodeRun:
        started = time.monotonic()
        sweep_run = self.client.create_run(self.pipeline.experiment_id, run_name=name,
                                           tags={"mlflow.parentRunId": self.pipeline.run_id})
        points = _sample(node)
        workers = max(1, min(node.limits.max_concurrent_trials or len(points), max_parallel, len(points)))

        deadline = started + (node.limits.timeout or float("inf"))

        def trial(index_point: tuple[int, dict[str, Any]]) -> TrialRun | None:
            index, point = index_point
            if time.monotonic() >= deadline:
                return None  # the sweep's timeout: Azure ML starts no more trials
            ran = self.command(name, node.trial, bindings, parent_run=sweep_run.info.run_id, search_space=point,
                               folder=f"{name}_trial_{index}")
            return TrialRun(point, ran.run_id, ran.outputs, seconds=ran.seconds)

        try:
            with ThreadPoolExecutor(workers) as pool:
                trials = [t for t in pool.map(trial, enumerate(points)) if t is not None]
        except JobFailed:
            self.client.set_terminated(sweep_run.info.run_id, "FAILED")
            raise
        metric, goal = node.objective.primary_metric, node.objective.goal.lower()
        for t in trials:
            t.metric = self.client.get_run(t.run_id).data.metrics.get(metric)
        ranked = [t for t in trials if t.metric is not None]
        if not ranked:
            self.client.set_terminated(sweep_run.info.run_id, "FAILED")
            raise JobFailed(name, f"No trial of the sweep logged the primary metric {metric!r}. The primary metric must be "
                                  "logged in the training script using mlflow.log_metric() with the same metric name.")
        best = (max if goal == "maximize" else min)(ranked, key=lambda t: t.metric)  # type: ignore[arg-type,return-value]
        self.client.set_tag(sweep_run.info.run_id, "best_child_run_id", best.run_id)
        self.client.log_metric(sweep_run.info.run_id, metric, best.metric)  # type: ignore[arg-type]
        self.client.set_terminated(sweep_run.info.run_id, "FINISHED")
        return NodeRun(name, sweep_run.info.run_id, best.outputs, seconds=time.monotonic() - started, trials=trials, best=best)


def _reuse_key(component: Any, bindings: Mapping[str, Any], search_space: Mapping[str, Any]) -> str:
    """What Azure ML compares before reusing a node: the component's definition, its code, its inputs."""
    digest = hashlib.sha256()
    digest.update(f"{component.command}\0{component.environment}\0{_code_digest(_code_folder(component))}\0".encode())
    for key in sorted(bindings):
        bound = bindings[key]
        digest.update(f"{key}=".encode() + (_digest(bound) if isinstance(bound, Path) else repr(bound)).encode() + b"\0")
    for key in sorted(search_space):
        digest.update(f"{key}={search_space[key]!r}\0".encode())
    return digest.hexdigest()


def _sample(node: Any) -> list[dict[str, Any]]:
    """The trials' parameter values: every grid point, or max_total_trials random draws with the rendered seed
    (Bayesian sampling too: Azure ML's Bayesian model is the service's own; its trials are draws from the same space)."""
    from azure.ai.ml.sweep import Choice, LogUniform, Randint, Uniform

    space = node.search_space
    algorithm = node.sampling_algorithm
    kind = (algorithm if isinstance(algorithm, str) else getattr(algorithm, "type", "random")).lower()
    limit = node.limits.max_total_trials
    if kind == "grid":
        if not all(isinstance(v, Choice) for v in space.values()):
            raise JobFailed("sweep", "grid sampling takes only choice parameters")
        names = list(space)
        points = [dict(zip(names, values)) for values in itertools.product(*(space[n].values for n in names))]
        return points[:limit] if limit else points
    seed = getattr(algorithm, "seed", None)
    rng = random.Random(seed)

    def draw(expression: Any) -> Any:
        if isinstance(expression, Choice):
            return rng.choice(expression.values)
        if isinstance(expression, LogUniform):  # before Uniform, its base class
            return math.exp(rng.uniform(expression.min_value, expression.max_value))
        if isinstance(expression, Uniform):
            return rng.uniform(expression.min_value, expression.max_value)
        if isinstance(expression, Randint):
            return rng.randrange(expression.upper)
        raise JobFailed("sweep", f"search space expression {type(expression).__name__} is not emulated")

    return [{n: draw(e) for n, e in space.items()} for _ in range(limit or 1)]


def _substitute(node: str, command: str, inputs: Mapping[str, str], outputs: Mapping[str, Path],
                search_space: Mapping[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        kind, _, key = expression.partition(".")
        if kind == "inputs" and key in inputs:
            return inputs[key]
        if kind == "outputs" and key in outputs:
            return str(outputs[key])
        if kind == "search_space" and key in search_space:
            return _scalar(search_space[key])
        raise JobFailed(node, f"the command refers to ${{{{{expression}}}}}, which this job does not define")

    return EXPRESSION.sub(replace, command)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    return str(value)


# --- files ---------------------------------------------------------------------------------------------

def _code_folder(component: Any) -> Path:
    code = Path(str(component.code))
    if not code.is_absolute():
        code = Path(component.base_path) / code
    return code.resolve()


def _ignore_patterns(code: Path) -> list[str]:
    for name in (".amlignore", ".gitignore"):  # Azure ML reads .amlignore, else .gitignore
        path = code / name
        if path.is_file():
            lines = (line.strip() for line in path.read_text().splitlines())
            return [line.rstrip("/") for line in lines if line and not line.startswith(("#", "!"))]
    return []


def _ignorer(code: Path) -> Callable[[str, list[str]], set[str]]:
    """shutil.copytree's `ignore`: what the SDK leaves out of the code snapshot."""
    patterns = [*_ignore_patterns(code), *ALWAYS_IGNORED]

    def ignored(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(code)
        return {name for name in names
                if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch((rel / name).as_posix(), p.lstrip("/")) for p in patterns)}

    return ignored


def _snapshot(code: Path, dest: Path) -> None:
    shutil.copytree(code, dest, ignore=_ignorer(code), symlinks=False)


def _code_digest(code: Path) -> str:
    """A digest of the snapshot the SDK would upload (its content hash decides whether it uploads again)."""
    ignored = _ignorer(code)
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(code):
        dirs[:] = sorted(d for d in dirs if d not in ignored(folder, dirs))
        for name in sorted(f for f in files if f not in ignored(folder, files)):
            path = Path(folder) / name
            digest.update(path.relative_to(code).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _read_only_copy(source: Path, dest_folder: Path) -> Path:
    dest_folder.mkdir(parents=True)
    target = dest_folder / (source.name if source.is_file() else uuid.uuid4().hex[:8])
    if source.is_file():
        shutil.copy2(source, target)
    else:
        shutil.copytree(source, target)
    for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return target


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*")) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0")
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()
