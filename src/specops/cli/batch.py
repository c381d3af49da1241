"""`specops batch invoke|list|show`: batch scoring jobs."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from specops.cli.options import console, friendly, table, with_project
from specops.errors import SpecopsError
from specops.project import Project

if TYPE_CHECKING:
    from rich.progress import TaskID


@click.group("batch")
def batch() -> None:
    """Batch endpoints: score a data set in parallel mini-batches, list and show jobs."""


@batch.command("invoke")
@click.argument("name")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None, help="CSV file to score")
@click.option("--dataset", default=None, help="score this Dataset's file (default: the endpoint's spec.dataset)")
@click.option("--deployment", default=None, help="batch deployment (default: the endpoint's default_deployment)")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for <job id>/ outputs (default: the endpoint's output_path)")
@click.option("--resume", "resume", default=None, metavar="JOB_ID", help="continue this job: score only its unfinished mini-batches")
@with_project
@friendly
def invoke(name: str, input_path: Path | None, dataset: str | None, deployment: str | None, output: Path | None,
           resume: str | None, project: Project) -> None:
    """Score a data set with batch endpoint NAME; re-running the same input resumes its job."""
    from specops.serving.batch import invoke as run_job

    if input_path is not None and dataset is not None:
        raise SpecopsError("give --input or --dataset, not both")
    if resume and (input_path or dataset or deployment):
        raise SpecopsError("--resume continues a job with its own input and deployment: drop --input, --dataset and --deployment")
    with _ProgressBar() as bar:
        job = run_job(project.specs, name, input=input_path, dataset=dataset, deployment=deployment, output=output,
                      resume=resume, progress=bar.update)
    _show(job)


@batch.command("list")
@click.argument("name")
@with_project
@friendly
def list_(name: str, project: Project) -> None:
    """Jobs of batch endpoint NAME, newest first."""
    from specops.serving.batch import list_jobs

    jobs = list_jobs(project.root, name)
    if not jobs:
        console.print(f"no batch jobs for {name}")
        return
    console.print(table(("job", "status", "deployment", "model", "mini-batches", "failed rows", "input"),
                        ([j.job, j.status, j.deployment, f"{j.model} v{j.version}", f"{len(j.done)}/{j.mini_batches}",
                          j.failed_rows, j.input] for j in jobs)))


@batch.command("show")
@click.argument("job_id")
@with_project
@friendly
def show(job_id: str, project: Project) -> None:
    """One job: status, model version, progress, failures, output."""
    from specops.serving.batch import find_job

    _show(find_job(project.root, job_id))


def _show(job) -> None:
    console.print(f"batch job {job.job} ({job.endpoint}/{job.deployment}): {job.status}")
    console.print(f"  model    {job.model} v{job.version} ({job.model_ref})")
    console.print(f"  input    {job.input} ({job.rows} rows, {job.mini_batches} mini-batches of {job.mini_batch_size})")
    console.print(f"  scored   {job.scored_rows} rows, {job.failed_rows} failed, {len(job.done)}/{job.mini_batches} mini-batches done")
    if job.runs:
        pids = ", ".join(map(str, sorted({d["pid"] for d in job.done.values()}))) or "-"
        console.print(f"  workers  {job.runs[-1]['workers']} in the last of {len(job.runs)} run(s); pids that scored: {pids}")
    output = job.output_file or Path(job.output_dir) / "summary.json"
    console.print(f"  output   {output}")
    if job.message:
        console.print(f"  note     {job.message}")
    if job.status == "Interrupted":
        console.print(f"  resume   specops batch invoke {job.endpoint} --resume {job.job}")


class _ProgressBar:
    """rich's progress bar: mini-batches done of total, rows per second of this run."""

    def __enter__(self) -> _ProgressBar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("mini-batches"),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console, transient=False)
        self.task: TaskID | None = None  # added on the first update, which knows the total
        self.progress.__enter__()
        return self

    def update(self, state) -> None:
        rate = f"{state.rows / state.seconds:,.0f} rows/s" if state.seconds > 0 and state.rows else ""
        if self.task is None:
            self.task = self.progress.add_task("scoring", total=state.total, completed=state.done, rate=rate)
        self.progress.update(self.task, completed=state.done, rate=rate)

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


COMMANDS = (batch,)
