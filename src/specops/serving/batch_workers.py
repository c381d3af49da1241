"""The worker processes of a batch job: each loads the model once and scores the mini-batches it is sent.

A worker talks to the parent over its own pipe, one mini-batch at a time, so
the parent always knows which mini-batch each worker holds and how long it has
held it: a mini-batch past its timeout is taken back by killing its worker
(a stuck predict cannot be interrupted any other way) and starting another.

Messages, worker -> parent:
    ("ready", pid)                                      model loaded
    ("load_failed", message)                            cannot serve; the job fails
    ("done", index, scored, failed, first_error, seconds)   the part file is in place
    ("error", index, message)                           this attempt failed; the parent may retry
"""
from __future__ import annotations

import csv
import io
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from specops.core.files import atomic_write
from specops.serving.config import DeploymentConfig, first_line

PART_COLUMNS = ("row", "prediction", "model", "version", "error")


def part_path(parts_dir: str, index: int) -> Path:
    return Path(parts_dir) / f"part-{index:06d}.csv"


@dataclass
class WorkerHandle:
    process: Any
    conn: Connection
    pid: int | None = None  # set once the model is loaded
    task: int | None = None  # the mini-batch it holds
    deadline: float = 0.0


def spawn(config: dict[str, Any], parts_dir: str | None) -> WorkerHandle:
    # spawn, not fork: the parent holds MLflow's SQLite connection and threads that must not be copied.
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=worker_main, args=(child_end, config, parts_dir), daemon=True)
    process.start()
    child_end.close()  # so the parent's recv sees EOF when the worker dies
    return WorkerHandle(process, parent_end)


def kill(worker: WorkerHandle) -> None:
    """Safe at any moment: a worker writes only part files, each atomically, and never the manifest."""
    worker.process.kill()
    worker.process.join()
    worker.conn.close()


def worker_main(conn: Connection, config: dict[str, Any], parts_dir: str | None) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what stops and saves the manifest.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from specops.serving.scorer import Scorer  # MLflow and the model's libraries: only in the workers

    try:
        scorer = Scorer(DeploymentConfig(**config))
    except Exception as exc:  # reported to the parent, which fails the job with it
        conn.send(("load_failed", first_line(exc)))
        return
    conn.send(("ready", os.getpid()))
    model, version = config["model"].partition("@")[0], config["version"]
    try:
        _serve(conn, scorer, parts_dir, model, version)
    except (EOFError, OSError):  # the parent died: nobody will record what we score
        return


def _serve(conn: Connection, scorer, parts_dir: str | None, model: str, version: str) -> None:
    while True:
        index, first_row, rows = conn.recv()
        started = time.perf_counter()
        try:
            lines, scored, failed, first_error = _score(scorer, first_row, rows, model, version)
            if parts_dir is not None:
                atomic_write(part_path(parts_dir, index), lines)
        except Exception as exc:  # one failed attempt; the parent retries or counts the rows
            conn.send(("error", index, first_line(exc)))
            continue
        conn.send(("done", index, scored, failed, first_error, round(time.perf_counter() - started, 4)))


def _score(scorer, first_row: int, rows: list[list[Any]], model: str, version: str) -> tuple[str, int, int, str | None]:
    """The part file's text: valid rows scored in one model call, contract violations as failed rows."""
    problems: dict[int, str] = {}
    for offset, values in enumerate(rows):
        found = scorer.schema.row_problem(values)
        if found:
            problems[offset] = f"row {first_row + offset}: {found[0]}: {found[1]}"
    valid = [values for offset, values in enumerate(rows) if offset not in problems]
    predictions = iter(scorer.score(valid) if valid else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PART_COLUMNS)
    for offset in range(len(rows)):
        if offset in problems:
            writer.writerow((first_row + offset, "", model, version, problems[offset]))
        else:
            writer.writerow((first_row + offset, next(predictions), model, version, ""))
    first_error = next(iter(problems.values()), None)
    return out.getvalue(), len(valid), len(problems), first_error
