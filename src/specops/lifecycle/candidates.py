"""Reading back what the train stage saved."""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from specops.errors import StageFailed
from specops.lifecycle.context import read_json
from specops.core.paths import RunPaths


@dataclass(frozen=True)
class SavedCandidate:
    id: str
    params: dict[str, Any]
    run_id: str
    parent_run_id: str
    model_uri: str
    classes: list[Any] | None = None  # a command-trained classifier's classes, for a model that only answers

    def load_model(self, paths: RunPaths) -> Any:
        folder = paths.candidate(self.id)
        if (folder / "model").is_dir():  # saved by the team's training command: an MLflow model
            from specops.lifecycle.command import load_model

            return load_model(folder / "model", f"candidate {self.id}", self.classes)
        # Written by our own train stage, in this project: not untrusted input.
        return pickle.loads((folder / "model.pkl").read_bytes())


def saved_candidates(paths: RunPaths) -> list[SavedCandidate]:
    metas = sorted(paths.candidates.glob("*/meta.json")) if paths.candidates.is_dir() else []
    if not metas:
        raise StageFailed(f"no trained candidates in {paths.rel(paths.candidates)}: run the train stage first")
    return [SavedCandidate(**read_json(paths, meta, "train")) for meta in metas]


def saved_candidate(paths: RunPaths, candidate_id: str) -> SavedCandidate:
    return SavedCandidate(**read_json(paths, paths.candidate(candidate_id) / "meta.json", "train"))
