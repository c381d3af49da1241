"""Run one lifecycle stage of a pipeline: the entry point `python -m specops stage` calls."""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from specops.errors import SpecopsError
from specops.lifecycle.context import StageContext
from specops.core.paths import STAGES
from specops.spec.kinds import Pipeline
from specops.spec.loader import SpecSet

# Each stage's module is imported only when it runs: dvc starts one process per stage,
# so a stage pays only for its own heavy imports (Great Expectations, MLflow).
MODULES = {
    "validate": "validate",
    "features": "featurize",
    "train": "train",
    "evaluate": "evaluate",
    "gate": "gate",
    "register": "register",
}


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--set PARAM=VALUE` pairs as typed values: 5 -> int, 0.1 -> float, gini -> str (YAML's scalars)."""
    import yaml

    fixed = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SpecopsError(f"--set expects PARAM=VALUE, got {item!r}")
        fixed[name] = yaml.safe_load(value)
    return fixed


def run_stage(stage: str, specs: SpecSet, pipeline: Pipeline, overrides: Mapping[str, Any] | None = None) -> None:
    """Run one stage; raises StageFailed (data or gate refused) or SpecopsError (a mistake in specs/params)."""
    if stage not in MODULES:
        raise SpecopsError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    module = importlib.import_module(f"specops.lifecycle.{MODULES[stage]}")
    module.run(StageContext.of(specs, pipeline, overrides))
