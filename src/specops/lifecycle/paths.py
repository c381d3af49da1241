"""Where each lifecycle stage writes, relative to the project root.

The DVC renderer and the stages both use this, so dvc.yaml's outs and what the
stages really write cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".specops"
# The lifecycle stages in the order DVC runs them.
STAGES = ("validate", "features", "train", "evaluate", "gate", "register")
BASELINE_FILE = "baseline.npz"


@dataclass(frozen=True)
class RunPaths:
    root: Path
    pipeline: str

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @property
    def base(self) -> Path:
        return self.root / "artifacts" / self.pipeline

    @property
    def validation(self) -> Path:
        return self.base / "validation.json"

    @property
    def features(self) -> Path:
        return self.base / "features.parquet"

    @property
    def candidates(self) -> Path:
        return self.base / "candidates"

    @property
    def split(self) -> Path:
        return self.candidates / "split.json"

    def candidate(self, candidate_id: str) -> Path:
        return self.candidates / candidate_id

    @property
    def evaluation(self) -> Path:
        return self.base / "evaluation.json"

    @property
    def gate(self) -> Path:
        return self.base / "gate.json"

    @property
    def registration(self) -> Path:
        return self.base / "registration.json"

    @property
    def baseline(self) -> Path:
        """The drift baseline summary of the registered model's inputs (monitors read it)."""
        return self.base / BASELINE_FILE

    @property
    def model_card(self) -> Path:
        return self.base / "model_card.md"

    def outputs(self, stage: str) -> list[Path]:
        """What a lifecycle stage writes: its dvc.yaml `outs`."""
        return {
            "validate": [self.validation],
            "features": [self.features],
            "train": [self.candidates],
            "evaluate": [self.evaluation],
            "gate": [self.gate],
            "register": [self.registration, self.model_card, self.baseline],
        }[stage]

    def inputs(self, stage: str) -> list[Path]:
        """Earlier stages' outputs a stage depends on, for dvc's ordering and reruns (besides data, specs, params)."""
        return {
            "validate": [],
            "features": [self.validation],
            "train": [self.features],
            "evaluate": [self.features, self.candidates],
            "gate": [self.evaluation],
            "register": [self.gate, self.evaluation, self.candidates],
        }[stage]


def mlflow_uris(root: Path, tracking_uri: str, artifact_location: str) -> tuple[str, str]:
    """Make the Project's relative sqlite/artifact paths absolute, so any cwd works."""
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        db = root / tracking_uri.removeprefix("sqlite:///")
        db.parent.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{db}"
    artifacts = Path(artifact_location)
    if not artifacts.is_absolute() and "://" not in artifact_location:
        artifacts = root / artifacts
        artifacts.mkdir(parents=True, exist_ok=True)
        artifact_location = artifacts.as_uri()
    return tracking_uri, artifact_location
