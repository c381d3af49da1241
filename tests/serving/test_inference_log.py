"""read_log(since=...): the hours a window needs, and exactly what the full read gives for them."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from specops.serving import inference_log
from specops.serving.inference_log import InferenceLog, read_log

T0 = 3600.0 * 500_000  # the start of an hour (2027-01-15 08:00 UTC)
HOURS = 5


def hour(n: int) -> str:
    """The file-name hour of T0's n-th hour."""
    return time.strftime("%Y%m%d%H", time.gmtime(T0 + n * 3600))


def writes() -> list[tuple[float, int, str, dict]]:
    """(when, worker, kind, payload) of five hours of two workers' traffic and its labels, in time order.

    Both workers answer at the same instants (ties the read must order alike); labels come from the
    other worker: quarter-hour 1's a minute later, 0's and 2's 90 minutes later (a later hour); 0's is
    replaced a minute after that by its own worker (the latest wins, though worker 0's file sorts
    first); quarter-hour 3 gets no hourly label.
    """
    out = []
    for h in range(HOURS):
        for quarter in range(4):
            at = T0 + h * 3600 + quarter * 900
            for worker in (0, 1):
                rid = f"{worker}-{h}-{quarter}"
                out.append((at, worker, "requests", {"time": at, "request_id": rid, "deployment": "blue", "prediction": 1}))
                if quarter < 3:
                    out.append((at + (60 if quarter == 1 else 5400), 1 - worker, "feedback", {"request_id": rid, "label": 1}))
                if quarter == 0:
                    out.append((at + 5460, worker, "feedback", {"request_id": rid, "label": 0}))
    return sorted(out, key=lambda w: w[0])


@pytest.fixture
def logged(tmp_path: Path, monkeypatch) -> Path:
    """The writes above through two workers' InferenceLog on a fake clock, plus a legacy feedback file."""
    clock = [T0]
    monkeypatch.setattr(inference_log.time, "time", lambda: clock[0])
    logs = [InferenceLog(tmp_path, worker) for worker in (0, 1)]
    for at, worker, kind, payload in writes():
        clock[0] = at
        (logs[worker].write_requests if kind == "requests" else logs[worker].write_feedback)([payload])
    monkeypatch.undo()
    legacy = [{"request_id": "0-2-3", "label": 7, "time": T0 + 2 * 3600 + 2800}]  # written before hourly feedback
    (tmp_path / "inference" / "feedback-0.jsonl").write_text("".join(json.dumps(f) + "\n" for f in legacy))
    return tmp_path


@pytest.mark.parametrize("since", [T0, T0 + 2 * 3600, T0 + 2 * 3600 + 900, T0 + 2 * 3600 + 901, T0 + 4 * 3600 + 2700,
                                   T0 + HOURS * 3600])
def test_a_bounded_read_is_the_full_read_filtered(logged: Path, since: float):
    full = read_log(logged)
    assert len(full) == HOURS * 4 * 2 and [r["time"] for r in full] == sorted(r["time"] for r in full)
    assert read_log(logged, since=since) == [r for r in full if r["time"] >= since]


def test_late_labels_replacements_and_the_legacy_file_are_joined(logged: Path):
    labels = {r["request_id"]: r.get("label") for r in read_log(logged, since=T0 + 2 * 3600)}
    assert labels["0-2-0"] == 0 and labels["1-2-0"] == 0  # replaced: the latest wins
    assert labels["0-2-2"] == 1 and labels["1-4-2"] == 1  # from the other worker's file of a later hour
    assert labels["0-2-1"] == 1  # from the file of `since`'s own hour
    assert labels["0-2-3"] == 7 and labels["1-2-3"] is None  # the legacy file is read; no label at all
    assert "0-1-3" not in labels  # before `since`


def test_a_bounded_read_opens_no_file_of_an_hour_before_since(logged: Path):
    since = T0 + 2 * 3600 + 1200
    expected = [r for r in read_log(logged) if r["time"] >= since]
    folder = logged / "inference"
    old = [p for p in folder.glob("*-*-*.jsonl") if p.stem.split("-")[1] < hour(2)]
    assert {p.name.split("-")[0] for p in old} == {"requests", "feedback"} and len(old) == 8
    for path in old:
        with path.open("a") as out:
            out.write("not JSON: reading this file fails\n")
    with pytest.raises(json.JSONDecodeError):
        read_log(logged)
    assert read_log(logged, since=since) == expected


def test_feedback_goes_to_the_file_of_its_hour(logged: Path):
    names = sorted(p.name for p in (logged / "inference").glob("feedback-*.jsonl"))
    assert names[0] == "feedback-0.jsonl"  # the legacy file, sorted first
    assert names[1:4] == [f"feedback-{hour(0)}-0.jsonl", f"feedback-{hour(0)}-1.jsonl", f"feedback-{hour(1)}-0.jsonl"]
