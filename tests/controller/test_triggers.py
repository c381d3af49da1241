"""Trigger detection and the durable event queue, on known clocks and files."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from specops.controller.events import DONE, STARTED, Event, EventQueue
from specops.controller.loop import Controller
from specops.controller.triggers import data_change_events, schedule_events, stale_events
from specops.project import Project
from specops.spec import Pipeline, load_specs
from tests.conftest import REPO

NOW = datetime(2026, 11, 30, 3, 30, tzinfo=UTC)  # a Monday, after the example's "0 3 * * 1"


@pytest.fixture
def specs():
    return load_specs(REPO)


def pipeline(specs) -> Pipeline:
    return specs.get(Pipeline, "credit-risk-training")


def test_schedule_fires_once_for_the_latest_cron_time(specs):
    [event] = schedule_events(pipeline(specs), since=NOW - timedelta(days=8), now=NOW)
    assert event.id == "schedule:credit-risk-training:2026-11-30T03:00:00+00:00" and event.reason == "schedule"
    assert schedule_events(pipeline(specs), since=NOW - timedelta(minutes=10), now=NOW) == []


def test_stale_after_thirty_days(specs):
    assert stale_events(pipeline(specs), NOW - timedelta(days=29), NOW) == []
    [event] = stale_events(pipeline(specs), NOW - timedelta(days=31), NOW)
    assert event.reason == "stale" and "31 days" in event.detail


def test_data_change_compares_the_file_with_what_dvc_recorded(tmp_path: Path, specs):
    data = tmp_path / "data" / "credit.csv"
    data.parent.mkdir()
    data.write_text("a,b\n1,2\n")
    copy = load_specs(REPO)
    copy.root = tmp_path
    recorded = hashlib.md5(data.read_bytes()).hexdigest()
    assert data_change_events(copy, pipeline(copy), recorded) == []
    data.write_text("a,b\n1,3\n")
    [event] = data_change_events(copy, pipeline(copy), recorded)
    assert event.reason == "data_change" and recorded in event.detail


def test_queue_never_takes_the_same_event_twice_and_survives_a_crash(tmp_path: Path):
    queue = EventQueue(tmp_path)
    stale, drift = Event("stale:p:1", "p", "stale"), Event("drift:p:w1", "p", "drift")
    assert queue.offer(stale) and queue.offer(drift)
    assert not queue.offer(Event("drift:p:w1", "p", "drift"))
    assert [e.id for e in queue.pending()] == ["drift:p:w1", "stale:p:1"]  # drift before stale
    queue.mark(drift, STARTED)
    # A new process (the controller restarted) still sees the started event as work to do.
    assert [e.id for e in EventQueue(tmp_path).pending()] == ["drift:p:w1", "stale:p:1"]
    queue.mark(drift, DONE)
    assert [e.id for e in EventQueue(tmp_path).pending()] == ["stale:p:1"]
    assert not EventQueue(tmp_path).offer(drift)


def test_unknown_reason_is_refused():
    with pytest.raises(ValueError, match="unknown trigger reason"):
        Event("x", "p", "boredom")


def test_detect_treats_cron_history_as_history(tmp_path: Path, specs):
    specs.root = tmp_path  # nothing applied there: only the schedule can fire
    ctl = Controller(Project(tmp_path))
    assert ctl.detect(specs, NOW) == []  # first sight: past fire times are not work
    [event] = ctl.detect(specs, NOW + timedelta(days=7))
    assert event.reason == "schedule"
    assert ctl.detect(specs, NOW + timedelta(days=7, minutes=1)) == []
