"""Where everything specops keeps lives, relative to the project root: one place that knows.

`.specops/` holds what specops records (state, audit log, endpoint servers'
files, rollout incidents, SLO history, the controller's queue); `artifacts/`
holds what the lifecycle stages write, which dvc.yaml declares as outs, so
`RunPaths` is shared by the DVC renderer and the stages and the two cannot
drift apart.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".specops"
# The lifecycle stages in the order DVC runs them.
STAGES = ("validate", "features", "train", "evaluate", "gate", "register")
BASELINE_FILE = "baseline.npz"


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @staticmethod
    def relative(where: Callable[[ProjectPaths], Path]) -> str:
        """The name below .specops/ of what `where` locates (`ProjectPaths.relative(lambda p: p.audit_log)`):
        the name a record has in any storage, a blob container included."""
        scratch = ProjectPaths(Path("/"))
        return where(scratch).relative_to(scratch.state_dir).as_posix()

    def state_file(self, env: str) -> Path:
        return self.state_dir / "state" / f"{env}.json"

    def state_lock(self, env: str) -> Path:
        return self.state_dir / "state" / f"{env}.lock"

    @property
    def apply_lock(self) -> Path:
        return self.state_dir / "apply.lock"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.jsonl"

    def endpoint(self, name: str) -> Path:
        """An endpoint server's files: config, traffic, keys, pid, inference log."""
        return self.state_dir / "endpoints" / name

    @property
    def incidents(self) -> Path:
        return self.state_dir / "incidents"

    def incident(self, incident_id: str) -> Path:
        return self.incidents / f"{incident_id}.md"

    def production_rows(self, pipeline: str) -> Path:
        """The labelled production rows a retraining of `pipeline` exported (specops.lifecycle.production)."""
        return self.state_dir / "feedback" / f"{pipeline}.csv"

    def slo_history(self, endpoint: str) -> Path:
        return self.state_dir / "slo" / endpoint / "metrics.jsonl"

    @property
    def controller(self) -> Path:
        return self.state_dir / "controller"

    @property
    def monitors(self) -> Path:
        return self.state_dir / "monitors"

    def monitor(self, name: str) -> Path:
        """A monitor's cached baselines."""
        return self.monitors / name

    def monitor_reports(self, name: str) -> Path:
        """One folder per run's window end below this: <YYYYMMDDTHHMMSSZ>/report.{json,html}."""
        return self.monitor(name) / "reports"

    @property
    def batch_jobs(self) -> Path:
        return self.state_dir / "batch"

    def run(self, pipeline: str) -> RunPaths:
        return RunPaths(self.root, pipeline)


@dataclass(frozen=True)
class RunPaths:
    """What one pipeline's lifecycle stages write."""

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

    @property
    def search(self) -> Path:
        """The train stage's record of its search: every trial, its reports and whether it was stopped early."""
        return self.candidates / "search.json"

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


def absolute_tracking_uris(root: Path, tracking_uri: str, artifact_location: str) -> tuple[str, str]:
    """The Project's relative sqlite/artifact paths made absolute, so any working directory works."""
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
