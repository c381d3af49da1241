"""`specops init`: a new specops project from the bundled copier template.

The template (template/copier.yml, files under template/project/) is rendered
by copier with the answers given here; everything copier cannot do with
`unsafe` off happens in Python afterwards: the data set is copied in and
tracked by DVC, git and DVC are initialised, dvc.yaml is rendered from the
new specs, the JSON Schemas are written, and the result is committed.

All of it happens in a staging folder first. Only a complete, validated,
committed project is moved into the destination, so a failure leaves the
destination as it was.

When a data set CSV exists, its header and values decide the Dataset
contract: column types (int, float, str, bool), nullability, ranges and the
allowed values of low-cardinality text columns, and the task from the target:
two values binary, a few classes multiclass, numbers regression. Id columns
(named *id, or text unique per row) and date columns stay in the contract but
are never model inputs.
Without one, the project gets a seeded example data generator and a pipeline
step that runs it, so `make demo` works on day one.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specops.errors import SpecopsError
from specops.init import source

TEMPLATE = Path(__file__).resolve().parent / "template"
CI_PROVIDERS = ("github", "azure-devops", "both")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
NAME_RULE = "2-40 lower-case letters, digits and single '-', starting with a letter"
MAX_ALLOWED = 20  # text columns with at most this many distinct values become one-hot features
MAX_CLASSES = 20  # a target with more distinct values than this is a regression's (numbers) or refused (text)
ID_NAME = re.compile(r"(^|[\s_-])id$", re.IGNORECASE)

# Question name -> the `specops init` flag that answers it (for error messages).
FLAGS = {
    "project_name": "--name",
    "description": "--description",
    "dataset_path": "--dataset-path",
    "target": "--target",
    "sensitive": "--sensitive",
    "ci_provider": "--ci",
    "azure_subscription_id": "--azure-subscription-id",
    "azure_resource_group": "--azure-resource-group",
    "azure_workspace": "--azure-workspace",
    "endpoint": "--endpoint/--no-endpoint",
    "endpoint_port": "--endpoint-port",
    "specops_source": "--specops-source",
    "example_rows": "--rows",
    "min_roc_auc": "--min-roc-auc",
}
REQUIRED = ("project_name", "target")

# The example generator's columns (template/project/src/<module>/generate.py), without target and sensitive.
EXAMPLE_COLUMNS: dict[str, dict[str, Any]] = {
    "age": {"type": "int", "min": 18, "max": 90},
    "income": {"type": "float", "min": 0},
    "tenure_years": {"type": "float", "min": 0, "max": 40},
    "visits": {"type": "int", "min": 0},
    "segment": {"type": "str", "allowed": ["basic", "plus", "premium"]},
}
EXAMPLE_FEATURES: list[dict[str, Any]] = [
    {"name": "age"},
    {"name": "log_income", "transform": "log1p", "inputs": ["income"]},
    {"name": "tenure_years"},
    {"name": "visits"},
    {"name": "segment", "transform": "one_hot"},
]


class InitError(SpecopsError):
    """A user mistake in `specops init`: printed without a traceback, exit 1."""


@dataclass
class DataPlan:
    """What the template needs to know about the data set."""

    dataset_path: str
    generate: bool
    columns: dict[str, dict[str, Any]]
    features: list[dict[str, Any]]
    source: Path | None = None  # an existing CSV to copy into the project
    rows: int | None = None
    task: str = "binary"
    skipped: list[str] = field(default_factory=list)  # columns that are not features, and why


# --- the public API ------------------------------------------------------------

def init_project(
    dest: Path | str,
    answers: dict[str, Any] | None = None,
    *,
    data: str | None = None,
    force: bool = False,
    template: str | None = None,
    vcs_ref: str | None = None,
    interactive: bool = False,
    report=lambda line: None,
) -> Path:
    """Generate a project in `dest` and return its path.

    `answers` holds copier question names (see template/copier.yml) -> values;
    missing ones take the template's defaults, except the required project
    name (default: `dest`'s folder name when that is a valid name) and target.
    `data` is a CSV to import (copied to `dataset_path` and `dvc add`ed) or, when
    no such file exists, the project-relative path the example generator writes.
    `interactive` lets copier ask for whatever `answers` lacks.
    """
    dest = Path(dest).expanduser().absolute()
    answers = {k: v for k, v in (answers or {}).items() if v is not None}
    _check_destination(dest, force)
    src = str(template or TEMPLATE)
    if "project_name" not in answers and NAME_PATTERN.match(dest.name) and "--" not in dest.name:
        answers["project_name"] = dest.name
    if data and "dataset_path" not in answers and Path(data).expanduser().is_file():
        answers["dataset_path"] = f"data/{_safe_file_name(Path(data).name)}"  # an imported CSV goes to data/
    if interactive:
        answers = _ask(src, vcs_ref, answers)
    missing = [FLAGS[q] for q in REQUIRED if not str(answers.get(q, "")).strip()]
    if "--name" in missing:  # the folder's name was the default: say why it could not be
        raise InitError(f"the folder name {dest.name!r} is not a valid project name ({NAME_RULE}): "
                        f"pass --name, e.g. --name {_suggest_name(dest.name)}")
    if missing:
        raise InitError(f"missing answers (no terminal to ask on): {', '.join(missing)}")
    _check_answers(answers)
    plan = plan_data(data, answers)
    answers.update(dataset_path=plan.dataset_path, generate_data=plan.generate, columns=plan.columns,
                   features=plan.features, min_rows=min(100, plan.rows or 100), task=plan.task)
    with tempfile.TemporaryDirectory(prefix="specops-init-") as tmp:
        pin = source.resolve(answers.get("specops_source"), Path(tmp))
        answers["specops_source"] = pin.requirement
        report(f"the project installs {pin.origin}: {pin.requirement}")
        stage = Path(tmp) / dest.name
        _render(src, stage, answers, vcs_ref)
        source.install(pin, stage)
        report(f"rendered the template into a staging folder ({len(_files(stage))} files)")
        _finish(stage, plan, report)
        _move_into(stage, dest)
    report(f"created {dest}")
    return dest


def update_project(project: Path | str, *, vcs_ref: str | None = None, template: str | None = None,
                   report=lambda line: None) -> None:
    """Move the project's specops pin to the specops running now, and take the template's later changes.

    The pin (requirements-specops.txt, wheels/) follows this specops whatever
    the template. Template changes need the template from a git repository with
    tags (`_src_path` in .copier-answers.yml, or `template`): copier's
    three-way update. The result is left uncommitted for review; conflicts are
    marked inline. Needs a clean working tree.
    """
    project = Path(project).expanduser().absolute()
    answers_file = project / ".copier-answers.yml"
    if not answers_file.is_file():
        raise InitError(f"{project} has no .copier-answers.yml: it was not generated by `specops init`")
    recorded = _read_answers(answers_file)
    if _git(project, "status", "--porcelain").strip():
        raise InitError(f"{project} has uncommitted changes: commit or stash them first, so the update can be reviewed")
    versioned = bool(recorded.get("_commit"))
    source_path = template or recorded.get("_src_path")
    if versioned and (not source_path or not _is_git_source(str(source_path))):
        raise InitError(f"the template {source_path or '(unknown)'} is not a git repository (moved?): "
                        "point at a clone with `specops init . --update --template <repo>`")
    with tempfile.TemporaryDirectory(prefix="specops-update-") as tmp:
        pin = source.resolve(None, Path(tmp))
        if versioned:
            _update_template(project, answers_file, recorded, pin, vcs_ref, template)
            report(f"updated {project} from the template {source_path}")
        else:
            report(f"the template ({recorded.get('_src_path') or 'unknown'}) is not a git repository, so only the "
                   "specops pin is updated; projects generated from a tagged template repository "
                   "(`specops init DIR --template <repo> --vcs-ref <tag>`) also take template changes (docs/init.md)")
        _repin(project, answers_file, str(recorded.get("specops_source") or ""), pin, report)
    report("review with `git diff` and commit")


def _update_template(project: Path, answers_file: Path, recorded: dict[str, Any], pin: source.Pin,
                     vcs_ref: str | None, template: str | None) -> None:
    import copier
    from copier.errors import CopierError

    if template and template != recorded.get("_src_path"):  # point the project at another clone for good
        _rewrite_answer(answers_file, "_src_path", template)
        _git(project, "commit", "-qm", "Point .copier-answers.yml at the template repository", "--", answers_file.name,
             identity=True)
    try:
        copier.run_update(str(project), data={"specops_source": pin.requirement}, defaults=True, overwrite=True,
                          unsafe=False, quiet=True, vcs_ref=vcs_ref, skip_answered=True)
    except CopierError as exc:
        raise InitError(f"template update failed: {exc}") from None
    except ValueError as exc:
        raise InitError(_answer_error(exc)) from None


def _repin(project: Path, answers_file: Path, old: str, pin: source.Pin, report) -> None:
    """requirements-specops.txt, the recorded answer and wheels/ all name `pin`; say what changed."""
    requirements = project / "requirements-specops.txt"
    lines = requirements.read_text().splitlines() if requirements.is_file() else []
    kept = [line for line in lines if line.startswith("#") or not line.strip()]
    requirements.write_text("\n".join([*kept, pin.requirement]) + "\n")
    _rewrite_answer(answers_file, "specops_source", pin.requirement)
    removed = source.install(pin, project)
    if old == pin.requirement:
        report(f"specops pin unchanged: {pin.requirement} ({pin.origin})")
        return
    report(f"specops pin: {old or '(none)'} -> {pin.requirement} ({pin.origin})")
    for path in removed:
        report(f"removed {path}")


# --- data ------------------------------------------------------------------------

def plan_data(data: str | None, answers: dict[str, Any]) -> DataPlan:
    """Decide the data set: import an existing CSV (inferring its contract) or generate example data."""
    target, sensitive = answers["target"], answers.get("sensitive") or ""
    source = Path(data).expanduser() if data else None
    if source is not None and source.exists():
        if not source.is_file():
            raise InitError(f"--data {data}: is not a file")
        if source.suffix.lower() != ".csv":
            raise InitError(f"--data {data}: expected a .csv file")
        dataset_path = answers.get("dataset_path") or f"data/{_safe_file_name(source.name)}"
        columns, features, rows, skipped, task = infer_contract(source, target, sensitive)
        return DataPlan(dataset_path, False, columns, features, source.resolve(), rows, skipped=skipped, task=task)
    if data and source is not None:  # named, but not there
        if source.is_absolute() or data.startswith("~"):
            raise InitError(f"--data {data}: no such file (a path that does not exist yet must be relative to the "
                            "project, where the example generator will write)")
        if answers.get("dataset_path") and answers["dataset_path"] != data:
            raise InitError(f"--data {data} does not exist and --dataset-path says {answers['dataset_path']}: give one")
    dataset_path = data or answers.get("dataset_path") or f"data/{answers['project_name']}.csv"
    clash = sorted({target, sensitive} & set(EXAMPLE_COLUMNS))
    if clash:
        raise InitError(f"the example data generator has a column named {clash[0]!r}: choose another "
                        f"{'--target' if clash[0] == target else '--sensitive'} name, or give --data an existing CSV")
    columns = dict(EXAMPLE_COLUMNS)
    if sensitive:
        columns[sensitive] = {"type": "str", "allowed": ["A", "B"]}
    columns[target] = {"type": "int", "allowed": [0, 1]}
    return DataPlan(dataset_path, True, columns, [dict(f) for f in EXAMPLE_FEATURES])


def infer_contract(path: Path, target: str, sensitive: str = "") -> tuple[dict, list, int, list[str], str]:
    """(columns, features, rows, skipped, task) for a CSV: the Dataset contract and FeatureSet `specops init` writes."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InitError(f"--data {path}: cannot read it as CSV: {exc}") from None
    names = [str(c) for c in frame.columns]
    if frame.empty:
        raise InitError(f"--data {path}: has a header but no rows")
    for flag, given in (("--target", target), ("--sensitive", sensitive)):
        if given and given not in names:
            raise InitError(f"{flag} {given!r} is not a column of {path.name} (columns: {', '.join(names)})")
    columns = {name: infer_column(frame[name]) for name in names}
    labels = frame[target]
    if labels.isna().any():
        raise InitError(f"--target {target!r} has {int(labels.isna().sum())} empty value(s): every row needs a label")
    task = infer_task(target, labels, columns[target])
    if task == "regression":
        columns[target] = {key: value for key, value in columns[target].items() if key != "allowed"}
    else:
        columns[target] = {"type": columns[target]["type"], "allowed": sorted(labels.unique().tolist(), key=str)}
    features, skipped = [], []
    for name in names:
        column = columns[name]
        if name in (target, sensitive):
            continue
        role = infer_role(name, frame[name], column)
        if role != "input":
            skipped.append(f"{name} (role: {role})")
            column["role"] = role
            column.pop("allowed", None)  # new ids and dates keep arriving
            continue
        if column["type"] == "str":
            if "allowed" not in column:
                skipped.append(f"{name} (text with more than {MAX_ALLOWED} distinct values)")
                continue
            features.append({"name": name, "transform": "one_hot"})
        else:
            features.append({"name": name})
    if not features:
        raise InitError(f"--data {path}: no column can be a model input (besides the target"
                        f"{' and sensitive attribute' if sensitive else ''}): {', '.join(skipped) or 'none left'}")
    return columns, features, len(frame), skipped, task


def infer_task(target: str, labels, column: dict[str, Any]) -> str:
    """binary for two values, multiclass for a few classes, regression for numbers with many values."""
    values = sorted(labels.unique().tolist(), key=str)
    if len(values) < 2:
        raise InitError(f"--target {target!r} has one value ({values[0]!r}): there is nothing to learn")
    if len(values) == 2:
        return "binary"
    numeric = column["type"] in ("int", "float")
    if numeric and (column["type"] == "float" or len(values) > MAX_CLASSES):
        return "regression"
    if len(values) <= MAX_CLASSES:
        return "multiclass"
    shown = ", ".join(map(str, values[:10])) + ", ..."
    raise InitError(f"--target {target!r} is text with {len(values)} distinct values ({shown}): more classes than "
                    f"{MAX_CLASSES}, and text cannot be a regression's target")


def infer_role(name: str, series, column: dict[str, Any]) -> str:
    """The Dataset column role: "id" or "date" (never a model input), else "input"."""
    import pandas as pd

    present = series.dropna()
    if ID_NAME.search(name) and column["type"] in ("int", "str"):
        return "id"
    if column["type"] == "str" and len(present):  # before the unique-string test: daily dates are unique too
        parsed = pd.to_datetime(present, errors="coerce", format="mixed")
        if parsed.notna().all() and present.str.contains(r"\d", regex=True).all():
            return "date"
    if column["type"] == "str" and len(present) > MAX_ALLOWED and present.is_unique:
        return "id"
    return "input"


def infer_column(series) -> dict[str, Any]:
    """One column's contract from its values: type, nullable, min/max or allowed values."""
    from pandas.api import types

    present = series.dropna()
    column: dict[str, Any] = {}
    if types.is_bool_dtype(series) or (len(present) and set(present.unique().tolist()) <= {True, False}
                                       and present.map(type).eq(bool).all()):
        column["type"] = "bool"
    elif types.is_integer_dtype(series):
        column["type"] = "int"
    elif types.is_float_dtype(series):
        integral = len(present) > 0 and bool((present == present.round()).all())
        column["type"] = "int" if integral and series.isna().any() else "float"
    else:
        column["type"] = "str"
    if series.isna().any():
        column["nullable"] = True
    if column["type"] in ("int", "float") and len(present):
        low, high = float(present.min()), float(present.max())
        # Widened to whole numbers, so the next batch is not rejected over a decimal.
        column["min"], column["max"] = math.floor(low), math.ceil(high)
    elif column["type"] == "str":
        distinct = sorted(str(v) for v in present.unique())
        if 0 < len(distinct) <= MAX_ALLOWED:
            column["allowed"] = distinct
    return column


def _safe_file_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem).strip("-.") or "data"
    return f"{stem}.csv"


# --- steps -----------------------------------------------------------------------

def _check_destination(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise InitError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise InitError(f"{dest} is not empty: choose a new folder, or pass --force to write into it")


def _suggest_name(folder: str) -> str:
    """A valid name close to the folder's ('My_Project 2' -> 'my-project-2'), or a placeholder."""
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", folder.lower())).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:40].rstrip("-")
    return name if NAME_PATTERN.match(name) else "my-project"


def _check_answers(answers: dict[str, Any]) -> None:
    """The checks copier's validators also make, here so that flags fail before anything runs."""
    name = str(answers.get("project_name", ""))
    if not NAME_PATTERN.match(name) or "--" in name:
        raise InitError(f"--name {name!r}: must be {NAME_RULE}")
    ci = answers.get("ci_provider")
    if ci is not None and ci not in CI_PROVIDERS:
        raise InitError(f"--ci {ci!r}: must be one of {', '.join(CI_PROVIDERS)}")
    for question in ("target", "sensitive"):
        value = str(answers.get(question) or "")
        if value and value != value.strip():
            raise InitError(f"{FLAGS[question]} {value!r}: has surrounding spaces")
    if answers.get("sensitive") and answers.get("sensitive") == answers.get("target"):
        raise InitError("--sensitive must differ from --target")


def _ask(src: str, vcs_ref: str | None, answers: dict[str, Any]) -> dict[str, Any]:
    """Let copier ask, on the terminal, every question the flags did not answer (nothing is written)."""
    import copier

    with tempfile.TemporaryDirectory(prefix="specops-init-ask-") as tmp:
        try:
            worker = copier.run_copy(src, Path(tmp) / "project", data=answers, vcs_ref=vcs_ref, pretend=True,
                                     unsafe=False, quiet=True, defaults=False)
        except ValueError as exc:
            raise InitError(_answer_error(exc)) from None
    asked = {k: v for k, v in worker.answers.combined.items() if not str(k).startswith("_")}
    for key in ("columns", "features", "generate_data", "module_name"):  # decided by plan_data, not asked
        asked.pop(key, None)
    return asked


def _render(src: str, stage: Path, answers: dict[str, Any], vcs_ref: str | None) -> None:
    import copier
    from copier.errors import CopierError

    try:
        copier.run_copy(src, stage, data=answers, vcs_ref=vcs_ref, defaults=True, unsafe=False, quiet=True,
                        overwrite=True)
    except CopierError as exc:
        raise InitError(f"the template failed: {exc}") from None
    except ValueError as exc:
        raise InitError(_answer_error(exc)) from None


def _answer_error(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    match = re.match(r"Validation error for question '(\w+)': (.*)", text)
    if match:
        return f"{FLAGS.get(match.group(1), match.group(1))}: {match.group(2)}"
    match = re.match(r'Question "(\w+)" is required', text)
    if match:
        return f"missing answer: {FLAGS.get(match.group(1), match.group(1))}"
    return f"invalid answer: {text}"


def _finish(stage: Path, plan: DataPlan, report) -> None:
    """git + DVC, the data set, schemas, dvc.yaml, and the first commit."""
    from specops.project import Project
    from specops.errors import SpecErrors
    from specops.schema import write_schemas

    _git(stage, "init", "-q")
    _git(stage, "symbolic-ref", "HEAD", "refs/heads/main")
    _dvc(stage, "init", "-q")
    _dvc(stage, "config", "core.analytics", "false")
    if plan.source is not None:
        target = stage / plan.dataset_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plan.source, target)
        _dvc(stage, "add", "-q", plan.dataset_path)
        report(f"imported {plan.source} as {plan.dataset_path} ({plan.rows} rows, tracked by DVC)")
        for note in plan.skipped:
            report(f"not a feature: {note}")
    ci_run = stage / ".ci" / "run"
    ci_run.chmod(0o755)  # in case packaging dropped the executable bit
    write_schemas(stage / "schemas")
    try:
        for env in ("local", "dev", "prod"):
            Project(stage, env).validate()
    except SpecErrors as exc:  # the answers produced invalid specs: say which
        raise InitError(f"the generated specs do not validate:\n{exc}") from None
    Project(stage, "local").render()
    _git(stage, "add", "-A")
    _git(stage, "commit", "-qm", "Generated by specops init", identity=True)
    shutil.rmtree(stage / ".dvc" / "tmp", ignore_errors=True)


KEEP = (".git", ".dvc", ".dvcignore")


def _move_into(stage: Path, dest: Path) -> None:
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage), str(dest))
        return
    for item in stage.iterdir():  # an empty folder, or --force
        existing = dest / item.name
        if item.name in KEEP and existing.exists():
            continue  # --force into an existing git/DVC repository: its history and cache stay; files arrive uncommitted
        if existing.is_dir() and not existing.is_symlink():
            shutil.rmtree(existing)
        elif existing.exists() or existing.is_symlink():
            existing.unlink()
        shutil.move(str(item), str(existing))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts[:1]]


def _git(cwd: Path, *args: str, identity: bool = False) -> str:
    if shutil.which("git") is None:
        raise InitError("git is not installed: specops init makes the project a git repository")
    env = dict(os.environ)
    if identity:  # a first commit should not fail on a machine with no git identity configured
        for key, value in (("GIT_AUTHOR_NAME", "specops init"), ("GIT_AUTHOR_EMAIL", "specops-init@localhost")):
            probe = subprocess.run(["git", "config", "user." + key.split("_")[-1].lower()], cwd=cwd,
                                   capture_output=True, text=True)
            if not probe.stdout.strip() and key not in env:
                env[key] = value
                env[key.replace("AUTHOR", "COMMITTER")] = value
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise InitError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def _dvc(cwd: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise InitError(f"dvc {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")


def _read_answers(path: Path) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InitError(f"{path}: not valid YAML: {exc}") from None
    return loaded if isinstance(loaded, dict) else {}


def _rewrite_answer(path: Path, key: str, value: str) -> None:
    """One top-level answer in .copier-answers.yml (copier's own format, so a line edit), added when missing.

    copier folds a long value onto indented continuation lines: those go with the line they continue."""
    line = f"{key}: {json.dumps(value)}\n"  # a JSON string is a YAML string, whatever it holds
    kept: list[str] = []
    replacing = found = False
    for old in path.read_text().splitlines(keepends=True):
        if replacing and old[:1] in (" ", "\t"):
            continue
        replacing = old.startswith(f"{key}:")
        found = found or replacing
        kept.append(line if replacing else old)
    path.write_text("".join(kept if found else [*kept, line]))


def _is_git_source(source: str) -> bool:
    from copier._vcs import get_repo

    return get_repo(source) is not None
