"""A Pipeline's search space: the `sweep:` of its params.yaml section, checked against its `spec.sweep`.

    sweep:
      max_depth: [3, 5, 7]                  # a choice: grid, random and bayesian sampling
      min_samples_leaf: {low: 1, high: 20}  # an integer range (both ends included): random and bayesian
      learning_rate: {low: 0.01, high: 0.3, log: true}  # a float range, sampled on a log scale

params.yaml is read twice, once for values and once (round-trip) for the lines, so
that every mistake names params.yaml, its line and the parameter.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from specops.errors import SpecError
from specops.spec.kinds import Pipeline, Sweep

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


Space = dict[str, Choice | Range]


@dataclass(frozen=True)
class ParamsLines:
    """Where each key of params.yaml sits: (section, 'sweep', name) -> 1-based line."""

    lines: Mapping[tuple[str, ...], int]

    def of(self, *path: str) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, *path: str, message: str) -> SpecError:
        return SpecError(PARAMS_FILE, self.of(*path), 1, ".".join(path), message)


def params_lines(text: str) -> ParamsLines:
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                lines[(*prefix, str(key))] = node.lc.key(key)[0] + 1
                walk(value, (*prefix, str(key)))

    try:
        walk(YAML(typ="rt").load(text), ())
    except YAMLError:
        pass  # the safe loader reports the syntax error
    return ParamsLines(lines)


def read_params_lines(root: Path) -> ParamsLines:
    path = root / PARAMS_FILE
    return params_lines(path.read_text(encoding="utf-8")) if path.is_file() else ParamsLines({})


def parse_space(section: str, sweep: Mapping[str, Any], lines: ParamsLines) -> tuple[Space, list[SpecError]]:
    """The declared space and the mistakes in it (each naming params.yaml, its line and the parameter)."""
    space: Space = {}
    errors = []
    for name, declared in sweep.items():
        where = (section, "sweep", str(name))
        if isinstance(declared, list):
            if not declared:
                errors.append(lines.error(*where, message="an empty list of values: the sweep has nothing to try "
                                                           "(give at least one value, or move the parameter to fixed)"))
            else:
                space[name] = Choice(tuple(declared))
        elif isinstance(declared, dict) and set(declared) in ({"low", "high"}, {"low", "high", "log"}):
            low, high, log = declared["low"], declared["high"], bool(declared.get("log", False))
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            if not numbers or not low < high or (log and low <= 0):
                errors.append(lines.error(*where, message=f"a range needs numbers low < high{' and low > 0 (log)' if log else ''}, "
                                                           f"got low={low!r}, high={high!r}"))
            else:
                space[name] = Range(low, high, log)
        else:
            errors.append(lines.error(*where, message="expected a list of values ([3, 5, 7]) or a range "
                                                       "({low: 1, high: 20}, optionally log: true)"))
    return space, errors


def grid_size(space: Space) -> int | None:
    """The number of grid points; None when a range makes the space infinite."""
    if any(isinstance(d, Range) for d in space.values()):
        return None
    return math.prod(len(d.values) for d in space.values() if isinstance(d, Choice))


def trial_budget(sweep: Sweep, space: Space) -> int:
    """max_total_trials, else the grid's size (a space with ranges needs the limit: the spec check says so)."""
    if not space:
        return 1  # fixed parameters only (an Azure ML trial, whose --set values are its point)
    size = grid_size(space)
    if sweep.sampling_algorithm == "grid" and size is not None:
        return min(size, sweep.limits.max_total_trials or size)
    if sweep.limits.max_total_trials is not None:
        return sweep.limits.max_total_trials
    if size is None:
        raise ValueError(f"{sweep.sampling_algorithm} sampling over a range needs limits.max_total_trials")
    return size


def budget_errors(pipeline: Pipeline, space: Space, lines: ParamsLines, spec_error: Any) -> list[SpecError]:
    """What the sampling algorithm cannot do with this space. `spec_error(path, message)` places a spec error."""
    sweep: Sweep = pipeline.spec.sweep
    section = pipeline.spec.params
    errors = []
    ranges = [name for name, d in space.items() if isinstance(d, Range)]
    if sweep.sampling_algorithm == "grid" and ranges:
        errors += [lines.error(section, "sweep", name, message="grid sampling takes only lists of values; a range needs "
                                                                 "sampling_algorithm random or bayesian") for name in ranges]
    elif ranges and sweep.limits.max_total_trials is None:
        errors.append(spec_error(("spec", "sweep", "limits", "max_total_trials"),
                                 f"{sweep.sampling_algorithm} sampling over a range ({', '.join(ranges)}) needs a budget: "
                                 "set limits.max_total_trials"))
    if sweep.early_termination is not None and not space:
        errors.append(spec_error(("spec", "sweep", "early_termination"),
                                 f"early termination needs a search space: {PARAMS_FILE} {section}.sweep is empty"))
    return errors
