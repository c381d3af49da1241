"""Batch scoring for a BatchEndpoint: a data set scored in parallel mini-batches, resumable after a crash.

The parent process resolves the deployment's model once, exactly as the
endpoint server does (`config.resolve_model`: alias -> version, files copied,
feature set version checked), checks the input's columns against the model's
Dataset contract, splits the rows into mini-batches of `mini_batch_size` and
hands them to `instance_count * max_concurrency_per_instance` spawned workers,
each loading the model once and scoring with the training feature code
(`Scorer`).

Crash safety: a worker writes each finished mini-batch atomically as its own
part file; the parent, the only writer of the job manifest
(`.specops/batch/<endpoint>/<job>/manifest.json`, atomic JSON), then records it.
A job's id is a hash of endpoint, deployment, model version, input content and
mini-batch layout, so invoking the same input again, or `--resume JOB`, scores
only the mini-batches the manifest does not record. The output file is
assembled from the part files, in input order, once every mini-batch is done.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from specops.core.clock import now
from specops.core.files import atomic_write
from specops.core.locks import exclusive, is_held
from specops.errors import LockHeld, SpecopsError
from specops.core.paths import ProjectPaths
from specops.serving import batch_workers as workers
from specops.serving.config import DeploymentConfig, resolve_model
from specops.spec import Dataset, SpecSet
from specops.spec.endpoints import BatchDeployment, BatchEndpoint

RUNNING, COMPLETED, FAILED, INTERRUPTED = "Running", "Completed", "Failed", "Interrupted"
MANIFEST_INTERVAL_S = 0.2  # at most this much finished work is re-scored after a crash; bounds manifest rewrites
WORKER_START_TIMEOUT_S = 180  # loading MLflow and the model on a busy machine


@dataclass
class BatchJob:
    """The job manifest. `done` and `failed` are keyed by mini-batch index (a string: JSON keys)."""

    job: str
    endpoint: str
    deployment: str
    model: str  # registered model name
    version: str
    model_ref: str  # as the spec said it, e.g. tiny@champion
    input: str
    input_sha256: str
    rows: int
    mini_batch_size: int
    mini_batches: int
    output_action: str
    output_dir: str
    output_file_name: str
    status: str = RUNNING
    message: str = ""
    created_at: str = field(default_factory=now)
    finished_at: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)  # one per invoke/resume: pid, time, workers
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows, scored, failed, error, pid, attempts, seconds, at
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # retries exhausted: rows, error, attempts

    @property
    def failed_rows(self) -> int:
        return sum(d["failed"] for d in self.done.values()) + sum(f["rows"] for f in self.failed.values())

    @property
    def scored_rows(self) -> int:
        return sum(d["scored"] for d in self.done.values())

    @property
    def output_file(self) -> Path | None:
        return Path(self.output_dir) / self.output_file_name if self.output_action == "append_row" else None

    def batch_rows(self, index: int) -> tuple[int, int]:
        start = index * self.mini_batch_size
        return start, min(start + self.mini_batch_size, self.rows)


@dataclass(frozen=True)
class JobProgress:
    done: int  # mini-batches finished, in earlier runs too
    total: int
    rows: int  # rows scored by this run
    seconds: float  # since this run's workers were ready


Progress = Callable[[JobProgress], None]


# --- where jobs live -----------------------------------------------------------

def jobs_dir(root: Path, endpoint: str) -> Path:
    return ProjectPaths(Path(root)).batch_jobs / endpoint


def manifest_path(root: Path, endpoint: str, job: str) -> Path:
    return jobs_dir(root, endpoint) / job / "manifest.json"


def save(root: Path, job: BatchJob) -> None:
    atomic_write(manifest_path(root, job.endpoint, job.job), json.dumps(asdict(job), indent=1))


def load_job(root: Path, endpoint: str, job: str) -> BatchJob:
    path = manifest_path(root, endpoint, job)
    if not path.is_file():
        known = ", ".join(j.job for j in list_jobs(root, endpoint)) or "none"
        raise SpecopsError(f"no batch job {job!r} for batch endpoint {endpoint!r} (jobs: {known})")
    try:
        return BatchJob(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise SpecopsError(f"batch job manifest {path} is unreadable ({exc}); delete its folder to start over") from None


def list_jobs(root: Path, endpoint: str) -> list[BatchJob]:
    """The endpoint's jobs, newest first, a crashed one shown as Interrupted."""
    found = [load_job(root, endpoint, p.parent.name) for p in jobs_dir(root, endpoint).glob("*/manifest.json")]
    for job in found:
        job.status = effective_status(root, job)
    return sorted(found, key=lambda j: (j.runs[-1]["started_at"] if j.runs else j.created_at), reverse=True)


def find_job(root: Path, job: str) -> BatchJob:
    """A job by id alone: ids are hashes, unique across endpoints."""
    folder = ProjectPaths(Path(root)).batch_jobs
    matches = sorted(folder.glob(f"*/{job}/manifest.json"))
    if not matches:
        raise SpecopsError(f"no batch job {job!r} under {folder}")
    found = load_job(root, matches[0].parent.parent.name, job)
    found.status = effective_status(root, found)
    return found


def effective_status(root: Path, job: BatchJob) -> str:
    """A Running manifest whose lock nobody holds was left by a process that died."""
    if job.status != RUNNING:
        return job.status
    return RUNNING if is_held(_job_lock_file(manifest_path(root, job.endpoint, job.job).parent)) else INTERRUPTED


@contextmanager
def _job_lock(job_dir: Path) -> Iterator[None]:
    """One process per job; the kernel drops the lock when its holder dies, even by SIGKILL."""
    try:
        with exclusive(_job_lock_file(job_dir), f"batch job {job_dir.name}"):
            yield
    except LockHeld:
        raise SpecopsError(f"batch job {job_dir.name} is being run by another process") from None


def _job_lock_file(job_dir: Path) -> Path:
    return job_dir / "lock"


# --- invoke ----------------------------------------------------------------------

def invoke(specs: SpecSet, endpoint: str, *, input: Path | str | None = None, dataset: str | None = None,
           deployment: str | None = None, output: Path | str | None = None, resume: str | None = None,
           progress: Progress | None = None) -> BatchJob:
    """Score a data set with a BatchEndpoint's deployment; returns the finished job's manifest.

    Raises SpecopsError for user mistakes and for a job that fails (error_threshold exceeded,
    a model that cannot load); what finished before a failure or crash is kept for a resume.
    """
    spec = specs.require(BatchEndpoint, endpoint).spec
    previous = load_job(specs.root, endpoint, resume) if resume else None
    chosen = _deployment(spec.deployments, previous.deployment if previous else deployment or spec.default_deployment)
    # A resumed job keeps the version it started with, even if the alias has moved since.
    ref = f"{previous.model}@{previous.version}" if previous else chosen.model
    config = _resolve(specs, endpoint, chosen.name, ref)
    source = Path(previous.input) if previous else _input_path(specs, endpoint, spec, input, dataset)
    rows = read_input(source, config)
    job = previous or _job_for(specs.root, endpoint, chosen, config, source, len(rows), spec.output_path)
    if output is not None:
        job.output_dir = str(Path(output).resolve() / job.job)
    if previous and _sha256(source) != previous.input_sha256:
        raise SpecopsError(f"{source} changed since batch job {previous.job} started; invoke without --resume to score it as a new job")
    with _job_lock(manifest_path(specs.root, endpoint, job.job).parent):
        return _run(specs.root, job, chosen, config, rows, progress)


def _deployment(deployments: list[BatchDeployment], name: str) -> BatchDeployment:
    found = next((d for d in deployments if d.name == name), None)
    if found is None:
        raise SpecopsError(f"no batch deployment named {name!r} (deployments: {', '.join(d.name for d in deployments)})")
    return found


def _resolve(specs: SpecSet, endpoint: str, deployment: str, ref: str) -> DeploymentConfig:
    from specops.registry import connect  # MLflow is slow to import: only when resolving

    config = resolve_model(specs, connect(specs), jobs_dir(specs.root, endpoint), DeploymentConfig(name=deployment, model=ref))
    if config.error:
        raise SpecopsError(f"batch endpoint {endpoint}, deployment {deployment}: {config.error}")
    return config


def _input_path(specs: SpecSet, endpoint: str, spec, input: Path | str | None, dataset: str | None) -> Path:
    if input is not None:
        path = Path(input)
        if not path.is_file():
            raise SpecopsError(f"input file {path} not found")
        return path.resolve()
    name = dataset or spec.dataset
    if name is None:
        raise SpecopsError(f"batch endpoint {endpoint} declares no spec.dataset: pass --input CSV or --dataset NAME")
    found = specs.require(Dataset, name)
    path = specs.root / found.spec.path
    if not path.is_file():
        raise SpecopsError(f"dataset {name}: {found.spec.path} not found (run the pipeline that produces it, or `dvc pull`)")
    return path


def read_input(path: Path, config: DeploymentConfig) -> list[list[Any]]:
    """The columns the feature set reads, as rows of plain Python values (missing -> None)."""
    from specops.serving.schema import InputSchema
    from specops.spec.kinds import DatasetSpec, FeatureSetSpec

    schema = InputSchema.of(FeatureSetSpec.model_validate(config.feature_set), DatasetSpec.model_validate(config.dataset))
    frame = _read_frame(path, schema)
    columns = [_values(frame[name], column) for name, column in zip(schema.columns, schema.types)]
    return [list(row) for row in zip(*columns)]


def _values(series, column) -> list[Any]:
    import pandas as pd

    values = [None if v != v else v for v in series.tolist()]  # v != v: NaN, pandas' missing value
    if column.type in ("int", "float") and not pd.api.types.is_numeric_dtype(series.dtype):
        # One bad cell makes pandas read the whole column as text: numbers become numbers again, and
        # only the bad cells fail their rows (naming the value), not every row of the file.
        values = [_number(v) for v in values]
    return values


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def _read_frame(path: Path, schema):
    import pandas as pd

    parquet = path.suffix == ".parquet"
    try:
        if parquet:
            import pyarrow.parquet

            header = pyarrow.parquet.read_schema(path).names
        else:
            header = list(pd.read_csv(path, nrows=0).columns)
        missing = [c for c in schema.columns if c not in header]
        if missing:
            raise SpecopsError(f"{path}: missing column(s) {', '.join(missing)}, which the model's feature set reads "
                               f"(columns in the file: {', '.join(header) or 'none'})")
        if parquet:
            return pd.read_parquet(path, columns=list(schema.columns))
        # Text columns stay text: "007" must not become the number 7.
        text = {c: str for c, t in zip(schema.columns, schema.types) if t.type == "str"}
        return pd.read_csv(path, usecols=list(schema.columns), dtype=text)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' parser and empty-file errors are ValueErrors
        raise SpecopsError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _job_for(root: Path, endpoint: str, deployment: BatchDeployment, config: DeploymentConfig, source: Path,
             rows: int, output_path: str) -> BatchJob:
    """The job for this input and model version: a new one, or the one a previous run of it left."""
    if rows == 0:
        raise SpecopsError(f"{source} has no rows to score")
    model = config.model.partition("@")[0]
    sha = _sha256(source)
    # Everything that changes which rows a mini-batch holds or what it predicts is in the id, nothing else:
    # the same input scored by the same version is the same job, whoever runs it and wherever it writes.
    key = json.dumps([endpoint, deployment.name, model, config.version, sha, deployment.mini_batch_size, deployment.output_action])
    job_id = hashlib.sha256(key.encode()).hexdigest()[:12]
    if manifest_path(root, endpoint, job_id).is_file():
        return load_job(root, endpoint, job_id)
    return BatchJob(
        job=job_id, endpoint=endpoint, deployment=deployment.name, model=model, version=str(config.version),
        model_ref=deployment.model, input=str(source), input_sha256=sha, rows=rows,
        mini_batch_size=deployment.mini_batch_size, mini_batches=-(-rows // deployment.mini_batch_size),
        output_action=deployment.output_action, output_dir=str((root / output_path).resolve() / job_id),
        output_file_name=deployment.output_file_name,
    )


# --- running a job ------------------------------------------------------------------

def _run(root: Path, job: BatchJob, deployment: BatchDeployment, config: DeploymentConfig,
         rows: list[list[Any]], progress: Progress | None) -> BatchJob:
    size = deployment.instance_count * deployment.max_concurrency_per_instance
    job.status, job.message, job.finished_at = RUNNING, "", None
    job.failed = {}  # retries were exhausted last time; a resume tries those mini-batches again
    job.runs.append({"pid": os.getpid(), "started_at": now(), "workers": size})
    save(root, job)
    parts = None if job.output_action == "summary_only" else str(manifest_path(root, job.endpoint, job.job).parent / "parts")
    if parts:
        os.makedirs(parts, exist_ok=True)
    try:
        _Scoring(root, job, deployment, asdict(config), parts, rows, progress).run(size)
        _check_threshold(job, deployment)
        _finish(job, parts)
    except SpecopsError as exc:
        job.status, job.message, job.finished_at = FAILED, str(exc), now()
        raise
    finally:
        save(root, job)  # a crash or Ctrl-C leaves it Running, shown as Interrupted: resume continues it
    return job


def _check_threshold(job: BatchJob, deployment: BatchDeployment) -> None:
    threshold = deployment.error_threshold
    if 0 <= threshold < job.failed_rows:
        raise SpecopsError(f"batch job {job.job}: {job.failed_rows} row(s) failed, more than error_threshold "
                           f"{threshold} of deployment {deployment.name}; first: {_first_error(job)}")


def _first_error(job: BatchJob) -> str:
    for index in sorted(set(job.done) | set(job.failed), key=int):
        entry = job.failed.get(index) or job.done[index]
        if entry.get("error"):
            prefix = f"mini-batch {index}: " if index in job.failed else ""
            return prefix + entry["error"]
    return "none"


class _Scoring:
    """The parent's loop: hand out unfinished mini-batches, record what comes back, retry, time out."""

    def __init__(self, root: Path, job: BatchJob, deployment: BatchDeployment, config: dict[str, Any],
                 parts: str | None, rows: list[list[Any]], progress: Progress | None):
        self.root, self.job, self.deployment, self.config, self.parts = root, job, deployment, config, parts
        self.rows, self.progress = rows, progress or (lambda _: None)
        self.pending = deque(i for i in range(job.mini_batches) if str(i) not in job.done)
        self.attempts: Counter[int] = Counter()
        self.pool: list[workers.WorkerHandle] = []
        self.scored = 0
        self.started = time.monotonic()
        self.saved_at = 0.0

    def run(self, size: int) -> None:
        if not self.pending:
            return
        self.pool = [workers.spawn(self.config, self.parts) for _ in range(min(size, len(self.pending)))]
        try:
            self._await_ready()
            self.started = time.monotonic()
            self._report()
            while self.pending or any(w.task is not None for w in self.pool):
                if self.pending and len(self.pool) < size:  # a worker was killed: replace it while work is left
                    self.pool.append(workers.spawn(self.config, self.parts))
                self._dispatch()
                self._receive_all(self.pool, timeout=0.05)
                self._time_out()
                self._save()
        finally:
            for worker in self.pool:
                workers.kill(worker)

    def _receive_all(self, among: list[workers.WorkerHandle], timeout: float) -> None:
        readable = wait([w.conn for w in among], timeout=timeout)
        for worker in [w for w in among if w.conn in readable]:
            self._receive(worker)

    def _await_ready(self) -> None:
        """Every worker loads the model before any scores: a model that cannot load fails the job at once."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while any(w.pid is None for w in self.pool):
            if time.monotonic() > deadline:
                raise SpecopsError(f"the batch workers did not load the model within {WORKER_START_TIMEOUT_S}s")
            self._receive_all([w for w in self.pool if w.pid is None], timeout=1)

    def _dispatch(self) -> None:
        timeout = self.deployment.retry_settings.timeout
        for worker in self.pool:
            if worker.pid is not None and worker.task is None and self.pending:
                index = self.pending.popleft()
                start, end = self.job.batch_rows(index)
                worker.conn.send((index, start, self.rows[start:end]))
                worker.task, worker.deadline = index, time.monotonic() + timeout

    def _receive(self, worker: workers.WorkerHandle) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=1)
            self._drop(worker, f"worker {worker.process.pid} died (exit code {worker.process.exitcode})")
            return
        kind = message[0]
        if kind == "ready":
            worker.pid = message[1]
        elif kind == "load_failed":
            raise SpecopsError(f"deployment {self.deployment.name} cannot load {self.job.model} "
                               f"version {self.job.version}: {message[1]}")
        elif kind == "done":
            self._record(worker, *message[1:])
        elif kind == "error":
            worker.task = None
            self._attempt_failed(message[1], message[2])

    def _record(self, worker: workers.WorkerHandle, index: int, scored: int, failed: int, error: str | None, seconds: float) -> None:
        start, end = self.job.batch_rows(index)
        self.job.done[str(index)] = {"rows": end - start, "scored": scored, "failed": failed, "error": error,
                                     "pid": worker.pid, "attempts": self.attempts[index] + 1, "seconds": seconds,
                                     "at": round(time.time(), 3)}
        worker.task = None
        self.scored += end - start
        self._report()
        if failed:
            _check_threshold(self.job, self.deployment)  # stop early: the job fails whatever the rest does

    def _time_out(self) -> None:
        timeout = self.deployment.retry_settings.timeout
        for worker in [w for w in self.pool if w.task is not None and time.monotonic() > w.deadline]:
            self._drop(worker, f"timed out after {timeout}s")

    def _drop(self, worker: workers.WorkerHandle, reason: str) -> None:
        """A dead or stuck worker: kill it and count the attempt; the loop starts another if work is left."""
        if worker.pid is None:
            raise SpecopsError(f"a batch worker for deployment {self.deployment.name} exited while loading the model ({reason})")
        index = worker.task
        workers.kill(worker)
        self.pool.remove(worker)
        if index is not None:
            self._attempt_failed(index, reason)

    def _attempt_failed(self, index: int, reason: str) -> None:
        self.attempts[index] += 1
        if self.attempts[index] <= self.deployment.retry_settings.max_retries:
            self.pending.append(index)
            return
        start, end = self.job.batch_rows(index)
        self.job.failed[str(index)] = {"rows": end - start, "error": reason, "attempts": self.attempts[index]}
        _check_threshold(self.job, self.deployment)

    def _save(self) -> None:
        if time.monotonic() - self.saved_at >= MANIFEST_INTERVAL_S:
            save(self.root, self.job)
            self.saved_at = time.monotonic()

    def _report(self) -> None:
        self.progress(JobProgress(len(self.job.done), self.job.mini_batches, self.scored, time.monotonic() - self.started))


# --- the output ----------------------------------------------------------------------

def _finish(job: BatchJob, parts: str | None) -> None:
    """Assemble the output in input order and mark the job done (only once every mini-batch is)."""
    out = Path(job.output_dir)
    if job.failed:
        job.message = f"{len(job.failed)} mini-batch(es) failed after retries; first: {_first_error(job)}"
    if parts is not None:
        predictions, errors = _assemble(job, parts)
        atomic_write(out / job.output_file_name, predictions)
        if errors is not None:
            atomic_write(out / "errors.csv", errors)
    job.status, job.finished_at = COMPLETED, now()
    atomic_write(out / "summary.json", json.dumps(summary(job), indent=2))


def _assemble(job: BatchJob, parts: str) -> tuple[str, str | None]:
    """Part files are copied as text, never re-parsed into numbers: the predictions stay exactly as scored."""
    predictions, errors = io.StringIO(), io.StringIO()
    good, bad = csv.writer(predictions, lineterminator="\n"), csv.writer(errors, lineterminator="\n")
    good.writerow(workers.PART_COLUMNS[:-1])
    bad.writerow(("row", "error"))
    for index in range(job.mini_batches):
        if str(index) in job.failed:
            start, end = job.batch_rows(index)
            bad.writerows((row, f"mini-batch {index}: {job.failed[str(index)]['error']}") for row in range(start, end))
            continue
        with open(workers.part_path(parts, index), newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                if row[-1]:
                    bad.writerow((row[0], row[-1]))
                else:
                    good.writerow(row[:-1])
    return predictions.getvalue(), errors.getvalue() if job.failed_rows else None


def summary(job: BatchJob) -> dict[str, Any]:
    return {"job": job.job, "endpoint": job.endpoint, "deployment": job.deployment, "model": job.model,
            "version": job.version, "input": job.input, "status": job.status, "rows": job.rows,
            "scored": job.scored_rows, "failed": job.failed_rows, "mini_batches": job.mini_batches,
            "output": str(job.output_file) if job.output_file else None, "message": job.message}
