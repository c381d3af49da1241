"""Which pipelines are due, and why: cron schedules, changed data, stale models.

Each function looks at the present and returns events; the queue's ids make
asking twice harmless.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from croniter import croniter

from specops.controller.events import Event
from specops.core.digests import data_hash, file_digest
from specops.spec import Dataset, Pipeline, SpecSet
from specops.state.records import AppliedResource

STALE_AFTER = timedelta(days=30)


def latest_fire(expression: str, since: datetime, now: datetime) -> datetime | None:
    """The latest cron fire time in (since, now], if any: missed older ones collapse into it."""
    fired = croniter(expression, now).get_prev(datetime)
    return fired if fired > since else None


def schedule_events(pipeline: Pipeline, since: datetime, now: datetime) -> list[Event]:
    expression = pipeline.spec.triggers.schedule
    fired = latest_fire(expression, since, now) if expression else None
    if fired is None:
        return []
    return [Event(f"schedule:{pipeline.name}:{fired.isoformat()}", pipeline.name, "schedule", f"cron {expression} at {fired.isoformat()}")]


def data_change_events(specs: SpecSet, pipeline: Pipeline, trained_on: str | None) -> list[Event]:
    """The dataset's file no longer has the hash the pipeline last trained on."""
    if not pipeline.spec.triggers.data_change or trained_on is None:
        return []
    path = specs.root / specs.require(Dataset, pipeline.spec.dataset).spec.path
    current = file_digest(path, "md5") if path.exists() else None
    if current is None or current == trained_on:
        return []
    return [Event(f"data_change:{pipeline.name}:{current}", pipeline.name, "data_change", f"{path.name} md5 {trained_on} -> {current}")]


def stale_events(pipeline: Pipeline, trained_at: datetime | None, now: datetime) -> list[Event]:
    if trained_at is None or now - trained_at < STALE_AFTER:
        return []
    age = (now - trained_at).days
    return [Event(f"stale:{pipeline.name}:{trained_at.isoformat()}", pipeline.name, "stale", f"last trained {age} days ago")]


def last_training(specs: SpecSet, pipeline: Pipeline, state: Mapping[str, AppliedResource]) -> tuple[datetime | None, str | None]:
    """When the pipeline last ran to completion (apply state), and the data md5 DVC recorded for that run."""
    entry = state.get(pipeline.key)
    if entry is None:
        return None, None
    path = specs.require(Dataset, pipeline.spec.dataset).spec.path
    recorded = data_hash(specs.root, path)
    return datetime.fromisoformat(entry.applied_at), recorded["md5"] if recorded["source"] == "dvc.lock" else None
