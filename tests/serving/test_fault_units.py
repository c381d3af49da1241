"""Faults without a server: bad rows in a batch, domain checks, keys and state files that break, stale pid files."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from specops.core.paths import ProjectPaths
from specops.core.processes import identity, is_running
from specops.serving import daemon
from specops.serving.batching import MicroBatcher
from specops.serving.keys import KeyChecker, ensure_keys
from specops.serving.schema import BadRequest, InputSchema, Unprocessable
from specops.serving.scorer import _blame
from specops.serving.server import PID_FILE
from tests.serving.conftest import process_gone
from specops.serving.traffic import read_traffic, set_traffic, traffic_file, watch_traffic
from specops.spec.kinds import DatasetSpec, FeatureSetSpec

DATASET = DatasetSpec.model_validate({"path": "d.csv", "target": "y", "columns": {
    "income": {"type": "float", "min": 0}, "score": {"type": "int", "min": 300, "max": 850},
    "region": {"type": "str", "allowed": ["north", "south"]}, "y": {"type": "int"}}})
FEATURES = FeatureSetSpec.model_validate({"dataset": "d", "version": 1, "owner": "o", "refresh": "0 0 * * *", "features": [
    {"name": "log_income", "transform": "log1p", "inputs": ["income"]}, {"name": "score"}, {"name": "region", "transform": "one_hot"}]})
COLUMNS = ["income", "score", "region"]


def body(*rows: list) -> bytes:
    return json.dumps({"input_data": {"columns": COLUMNS, "data": list(rows)}}).encode()


# --- one bad row fails one request --------------------------------------------------------------

def score_rejecting_negative(rows: list[list]) -> list:
    """A model that fails a whole call on any negative row, naming the row as the Scorer does."""
    bad = [i for i, row in enumerate(rows) if row[0] < 0]
    if bad:
        raise Unprocessable(f"row {bad[0]}", "cannot score", bad[0])
    return [row[0] * 10 for row in rows]


def run_batch(score, requests: list[list[list]]) -> list:
    """Submit every request before the batcher's loop runs, so they are scored as one batch."""
    async def main() -> list:
        calls: list[int] = []

        def counted(rows):
            calls.append(len(rows))
            return score(rows)

        batcher = MicroBatcher(counted, max_batch_size=100, max_wait_ms=0)
        futures = [batcher.submit(rows) for rows in requests]
        batcher.start()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert calls[0] == sum(map(len, requests))  # the first call held every request
        return outcomes

    return asyncio.run(main())


def test_a_bad_row_fails_only_its_own_request_in_a_batch():
    outcomes = run_batch(score_rejecting_negative, [[[1]], [[2], [-5], [3]], [[4], [5]], [[-1]]])
    assert outcomes[0] == [10] and outcomes[2] == [40, 50]
    assert isinstance(outcomes[1], Unprocessable) and outcomes[1].row == 1  # its own row index, not the batch's
    assert isinstance(outcomes[3], Unprocessable) and outcomes[3].row == 0


def test_an_error_naming_no_row_is_isolated_request_by_request():
    def picky(rows):
        if any(row[0] == "boom" for row in rows):
            raise ValueError("the model cannot take this")
        return [len(row) for row in rows]

    outcomes = run_batch(picky, [[["a"]], [["boom"]], [["c", "d"]]])
    assert outcomes[0] == [1] and outcomes[2] == [2]
    assert isinstance(outcomes[1], ValueError)


def test_large_requests_take_turns_with_small_ones_instead_of_queueing_in_front():
    """Three 250-row requests queued before one small one, and another small one arriving during the first call:
    the small ones are scored between the large ones (each large request alone, one per turn), not after all of them."""
    async def main() -> tuple[list[int], list]:
        calls: list[int] = []
        late: list[asyncio.Future] = []

        def score(rows):
            calls.append(len(rows))
            if len(calls) == 1:  # a small request arrives while the first call runs
                late.append(batcher.submit([[7]]))
            return [row[0] for row in rows]

        batcher = MicroBatcher(score, max_batch_size=100, max_wait_ms=0)
        large = [batcher.submit([[i]] * 250) for i in range(3)]
        small = batcher.submit([[1], [2]])
        batcher.start()
        outcomes = await asyncio.gather(*large, small)
        return calls, [*outcomes, await late[0]]

    calls, outcomes = asyncio.run(main())
    assert calls == [2, 250, 1, 250, 250]
    assert outcomes == [[0] * 250, [1] * 250, [2] * 250, [1, 2], [7]]


def test_the_scorer_blames_the_row_whose_features_no_model_takes():
    matrix = np.array([[1.0, 2.0], [3.0, -np.inf], [1e300, 0.0]])
    blamed = _blame(["a", "b"], matrix, ValueError("Input X contains infinity"))
    assert isinstance(blamed, Unprocessable) and blamed.row == 1 and "feature b is -inf" in blamed.message
    too_large = _blame(["a", "b"], matrix[[0, 2]], ValueError("x"))
    assert too_large is not None and too_large.row == 1  # beyond float32, where sklearn's trees work
    assert _blame(["a", "b"], matrix[:1], ValueError("x")) is None  # finite rows: the model's own fault


# --- the declared domain at the door -------------------------------------------------------------

@pytest.mark.parametrize("row, column, message", [
    ([-1.0, 700, "north"], "income", "-1.0 is below the declared min 0"),
    ([1.0, 5, "north"], "score", "5 is below the declared min 300"),
    ([1.0, 900, "north"], "score", "900 is above the declared max 850"),
    ([1.0, 700, "mars"], "region", "'mars' is not one of north, south"),
])
def test_values_outside_the_declared_domain_are_422_naming_row_and_column(row, column, message):
    schema = InputSchema.of(FEATURES, DATASET)
    with pytest.raises(Unprocessable) as info:
        schema.parse(body([1.0, 700, "south"], row))
    assert info.value.status == 422 and info.value.row == 1 and info.value.column == column
    assert message in info.value.message and f"row 1, column {column}" in info.value.message
    assert info.value.body()["row"] == 1 and info.value.body()["column"] == column


def test_flag_mode_scores_out_of_range_rows_and_says_why():
    schema = InputSchema.of(FEATURES, DATASET, out_of_range="flag")
    assert schema.parse(body([-1.0, 900, "north"])) == [[-1.0, 900, "north"]]
    assert schema.flags([-1.0, 900, "north"]) == {"income": "-1.0 is below the declared min 0",
                                                  "score": "900 is above the declared max 850"}
    with pytest.raises(BadRequest) as info:  # a wrong type is never flagged through
        schema.parse(body([1.0, "high", "north"]))
    assert info.value.status == 400


def test_duplicate_columns_and_huge_integers_are_400_naming_the_field():
    schema = InputSchema.of(FEATURES, DATASET)
    with pytest.raises(BadRequest) as duplicate:
        schema.parse(json.dumps({"input_data": {"columns": [*COLUMNS, "score"], "data": [[1.0, 700, "north", 5]]}}).encode())
    assert duplicate.value.status == 400 and duplicate.value.field == "input_data.columns" and "'score'" in duplicate.value.message
    with pytest.raises(BadRequest) as huge:
        schema.parse(b'{"data": [{"income": 1.0, "score": 1' + b"0" * 400 + b', "region": "north"}]}')
    assert huge.value.status == 400 and huge.value.field == "data[0].score" and "401 digits" in huge.value.message


def test_more_rows_than_the_limit_is_413_before_any_row_is_checked():
    schema = InputSchema.of(FEATURES, DATASET, max_rows=2)
    assert len(schema.parse(body([1.0, 700, "north"], [2.0, 700, "south"]))) == 2
    for document in (body([1.0, 700, "north"], [2.0, 700, "south"], ["not", "checked", 0]),
                     json.dumps({"data": [{"income": 1.0, "score": 700, "region": "north"}] * 3}).encode()):
        with pytest.raises(BadRequest) as info:
            schema.parse(document)
        assert info.value.status == 413 and "3 rows; at most 2 per request" in info.value.message


# --- keys and state files ----------------------------------------------------------------------

def test_a_non_utf8_authorization_header_is_no_key(tmp_path: Path):
    ensure_keys(tmp_path)
    checker = KeyChecker(tmp_path)
    assert checker.accepts("Bearer \udcff\udcfe") is False  # how aiohttp hands over bytes that are no UTF-8


def test_a_keys_file_rewritten_in_place_keeps_the_last_good_keys(tmp_path: Path, monkeypatch):
    from specops.serving import keys as keys_module

    monkeypatch.setattr(keys_module, "RECHECK_SECONDS", -1.0)  # recheck on every request
    keys = ensure_keys(tmp_path)
    checker = KeyChecker(tmp_path)
    path = tmp_path / "keys.json"
    for half_written in ("", '{"primary": "x', '{"primary": 1, "secondary": 2}'):
        path.write_text(half_written)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a change the checker notices
        assert checker.accepts(f"Bearer {keys['primary']}")
        assert checker.fault is not None
    path.write_text(json.dumps({"primary": "new-1", "secondary": "new-2"}))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert checker.accepts("Bearer new-1") and not checker.accepts(f"Bearer {keys['primary']}")
    assert checker.fault is None


@pytest.mark.parametrize("text", ["[]", '{"traffic": {"blue": "all"}}', '{"traffic": {"blue": 50}, "mirror_traffic": {}}', "{"])
def test_traffic_files_of_the_wrong_shape_are_refused_on_read(tmp_path: Path, text: str):
    traffic_file(tmp_path).write_text(text)
    with pytest.raises(ValueError):
        read_traffic(tmp_path)


def test_the_traffic_watcher_survives_a_broken_file_reports_it_and_keeps_the_last_good_weights(tmp_path: Path):
    set_traffic(tmp_path, ["blue", "green"], {"blue": 100})
    applied: list[dict] = []
    faults: list[tuple[str, str | None]] = []

    async def until(condition) -> None:
        while not condition():
            await asyncio.sleep(0.02)

    async def main() -> None:
        watch = asyncio.get_running_loop().create_task(
            watch_traffic(tmp_path, lambda traffic, mirror: applied.append(traffic), lambda f, p: faults.append((f, p))))
        await asyncio.wait_for(until(lambda: applied), 30)
        traffic_file(tmp_path).write_text("[]")
        await asyncio.wait_for(until(lambda: faults), 30)
        set_traffic(tmp_path, ["blue", "green"], {"green": 100})
        await asyncio.wait_for(until(lambda: len(applied) == 2), 30)
        await asyncio.wait_for(until(lambda: len(faults) == 2), 30)
        watch.cancel()

    asyncio.run(main())
    assert applied == [{"blue": 100}, {"green": 100}]
    assert faults[0][0] == "traffic.json" and "keeping the last good one" in str(faults[0][1]) and faults[1] == ("traffic.json", None)


# --- pid files ----------------------------------------------------------------------------------

@pytest.fixture
def stranger():
    """A process that is not a server, whose pid a stale pid file might name."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def test_a_pid_file_naming_a_reused_pid_is_not_a_running_server(tmp_path: Path, stranger: subprocess.Popen):
    paths = ProjectPaths(tmp_path)
    state_dir = paths.endpoint("e")
    state_dir.mkdir(parents=True)
    recorded = {**identity(stranger.pid), "port": 1}
    (state_dir / PID_FILE).write_text(json.dumps({**recorded, "starttime": recorded["starttime"] - 1}))  # started earlier
    assert daemon.server_info(paths, "e") is None
    assert daemon.stop(paths, "e") is False
    (state_dir / PID_FILE).write_text(json.dumps({"pid": stranger.pid, "port": 1, "started": "x"}))  # an old file: no identity
    assert daemon.server_info(paths, "e") is None and daemon.stop(paths, "e") is False
    time.sleep(0.2)
    assert stranger.poll() is None, "the unrelated process was signalled"
    (state_dir / PID_FILE).write_text(json.dumps(recorded))
    assert daemon.server_info(paths, "e") == recorded and is_running(recorded)


# --- processes die with their parent -------------------------------------------------------------

ORPHAN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import os, sys, time
from specops.core.processes import die_with_parent
die_with_parent(int(sys.argv[1]))
print("watching", flush=True)
time.sleep(120)
''', str(os.getpid())], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "watching\\n"
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_that_watches_its_parent_dies_when_the_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert process_gone(child), f"process {child} outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_a_child_whose_parent_is_already_gone_exits_at_once():
    late = subprocess.run([sys.executable, "-c", "from specops.core.processes import die_with_parent; die_with_parent(1 << 22)"],
                          capture_output=True, text=True, timeout=60)
    assert late.returncode == 1 and "died before" in late.stderr


def test_serve_refuses_a_port_another_socket_shares(tmp_path: Path):
    """An orphaned worker listening with SO_REUSEPORT would share the port with a new server's workers."""
    from specops.serving.config import ServingConfig

    with socket.socket() as orphan:
        orphan.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        orphan.bind(("127.0.0.1", 0))
        orphan.listen()
        port = orphan.getsockname()[1]
        ensure_keys(tmp_path)
        set_traffic(tmp_path, ["blue"], {"blue": 100})
        config = tmp_path / "config.json"
        ServingConfig(endpoint="e", state_dir=str(tmp_path), deployments=[], traffic={"blue": 100}, mirror_traffic={},
                      port=port, workers=1, max_batch_size=8, max_wait_ms=0, max_request_bytes=4096).save(config)
        code = ("import sys; from pathlib import Path; from specops.errors import SpecopsError\n"
                "from specops.serving.server import serve\n"
                "try: serve(Path(sys.argv[1]))\nexcept SpecopsError as e: print(e); sys.exit(3)")
        done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and f"cannot listen on 127.0.0.1:{port}" in done.stdout


# --- uncaught errors -----------------------------------------------------------------------------

def test_an_uncaught_error_is_a_json_500_naming_the_request_without_a_traceback(caplog):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from specops.serving.app import json_errors

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail\nTraceback (most recent call last): ...")

    async def too_large(request: web.Request) -> web.Response:
        raise web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2)

    async def main() -> tuple[int, str, dict, int]:
        app = web.Application(middlewares=[json_errors])
        app.router.add_get("/broken", broken)
        app.router.add_get("/large", too_large)
        async with TestClient(TestServer(app)) as client:
            answer = await client.get("/broken", headers={"x-request-id": "r-1"})
            large = await client.get("/large")
            return answer.status, answer.content_type, await answer.json(), large.status

    status, content_type, document, large = asyncio.run(main())
    assert (status, content_type, document) == (500, "application/json", {"error": "internal error", "request_id": "r-1"})
    assert large == 413  # aiohttp's own answers go through as they are
    logged = [r.getMessage() for r in caplog.records if r.name == "specops.serving"]
    assert logged == ["GET /broken failed (request r-1): RuntimeError: secret detail"]
    assert not any(r.exc_info for r in caplog.records)


TIED = """
import subprocess, sys, time
from specops.core.processes import run_tied
# The command starts a grandchild of its own, as dvc repro starts a stage; each prints its pid.
stage = "import os, subprocess, sys, time; print(os.getpid(), flush=True); time.sleep(120)"
command = "import os, subprocess, sys, time; print(os.getpid(), flush=True); subprocess.Popen([sys.executable, '-c', %r]); time.sleep(120)"
sys.exit(run_tied([sys.executable, "-c", command % stage]))
"""


def test_a_tied_command_and_what_it_started_die_with_a_caller_killed_outright():
    """What `apply` does with `dvc repro`: a kill -9 of apply leaves no pipeline stage running."""
    caller = subprocess.Popen([sys.executable, "-c", TIED], stdout=subprocess.PIPE, text=True)
    try:
        command, stage = int(caller.stdout.readline()), int(caller.stdout.readline())
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        assert process_gone(command) and process_gone(stage), "the command or the stage it started outlived the caller"
    finally:
        caller.kill()
        caller.wait()


def test_a_tied_command_returns_its_exit_code():
    from specops.core.processes import run_tied

    assert run_tied([sys.executable, "-c", "import sys; sys.exit(7)"]) == 7


# --- review: duplicate keys, sensitive values, strict state JSON ---------------------------------

SENSITIVE = DatasetSpec.model_validate({**DATASET.model_dump(), "sensitive": ["gender"], "columns": {
    **DATASET.model_dump()["columns"], "gender": {"type": "str", "allowed": ["F", "M"]}}})


@pytest.mark.parametrize("text", [
    b'{"data": [{"income": 1.0, "score": 700, "region": "north", "income": -5.0}]}',
    b'{"data": [{"income": 1.0, "score": 700, "region": "north"}], "data": []}',
])
def test_a_key_twice_in_one_object_is_a_400_naming_it(text: bytes):
    with pytest.raises(BadRequest) as info:
        InputSchema.of(FEATURES, DATASET).parse(text)
    assert info.value.status == 400 and info.value.field == "body" and "appears more than once" in info.value.message
    assert ("'income'" if b'"income": -5.0' in text else "'data'") in info.value.message


@pytest.mark.parametrize("gender, status, field", [
    ("X", 422, "data[0].gender"),  # outside the declared allowed values
    ({"nested": "object"}, 400, "data[0].gender"),
    ("F" * 100_000, 422, "data[0].gender"),
])
def test_sensitive_values_are_checked_at_the_door_even_when_out_of_range_flags(gender, status, field):
    """Sensitive columns go to the log only; a value there no fairness report can group by is refused."""
    record = {"income": 1.0, "score": 700, "region": "north", "gender": gender}
    for mode in ("reject", "flag"):
        with pytest.raises(BadRequest) as info:
            InputSchema.of(FEATURES, SENSITIVE, out_of_range=mode).parse(json.dumps({"data": [record]}).encode())
        assert info.value.status == status and info.value.field == field
    split = {"input_data": {"columns": [*COLUMNS, "gender"], "data": [[1.0, 700, "north", gender]]}}
    with pytest.raises(BadRequest) as info:
        InputSchema.of(FEATURES, SENSITIVE).parse(json.dumps(split).encode())
    assert info.value.field == "input_data.data[0][3] (gender)"
    fine = InputSchema.of(FEATURES, SENSITIVE).parse(json.dumps({"data": [{**record, "gender": "F"}]}).encode())
    assert fine == [[1.0, 700, "north"]]


def test_state_is_written_as_strict_json_and_a_non_finite_number_is_refused(tmp_path: Path):
    from specops.errors import SpecopsError
    from specops.rollout.metrics import parse
    from specops.state.records import RolloutRecord
    from specops.state.storage import LocalStorage
    from specops.state.store import StateStore

    exposition = ('specops_request_duration_seconds_bucket{deployment="blue",le="0.01"} 3.0\n'
                  'specops_request_duration_seconds_bucket{deployment="blue",le="+Inf"} 4.0\n')
    snapshot = parse(exposition)
    assert snapshot["blue"]["buckets"] == [[0.01, 3.0], ["+Inf", 4.0]]  # a window's start, saved in state
    paths = ProjectPaths(tmp_path)
    store = StateStore(LocalStorage(paths.state_dir), "local")
    record = RolloutRecord("e", "canary", "blue", "green", "m", "1", "2", window={"time": 1.0, "metrics": snapshot})
    store.save_rollout(record)
    state_file = paths.state_file("local")
    json.loads(state_file.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in state"))
    before = state_file.read_text()
    record.analyses.append({"p95_ratio": float("inf")})
    with pytest.raises(SpecopsError, match=r"non-finite number at rollouts\.e\.analyses\[0\]\.p95_ratio"):
        store.save_rollout(record)
    assert state_file.read_text() == before


# --- inference-log rotation and retention ---------------------------------------------------------

def test_the_inference_log_rotates_by_size_and_readers_see_every_segment(tmp_path: Path):
    from specops.serving.inference_log import InferenceLog, Retention, log_dir, read_log

    log = InferenceLog(tmp_path, 0, Retention(rotate_bytes=2000, max_bytes=1 << 30, retention_s=86400))
    for i in range(100):  # about 90 bytes each: five files
        log.write_requests([{"time": time.time(), "request_id": f"r{i}", "row": 0, "inputs": {"x": i}, "prediction": 0}])
    log.write_feedback([{"request_id": "r3", "label": 1}])
    files = sorted(p.name for p in log_dir(tmp_path).glob("requests-*.jsonl"))
    assert len(files) > 2 and all(p.stat().st_size <= 2000 for p in log_dir(tmp_path).glob("requests-*.jsonl"))
    records = read_log(tmp_path, since=time.time() - 60)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(100)]
    assert [r.get("label") for r in records][:4] == [None, None, None, 1]


def test_retention_deletes_old_hours_then_the_oldest_past_the_size_cap_never_the_current_hour(tmp_path: Path):
    from specops.serving.inference_log import Retention, _stamp, log_dir, prune, read_log

    folder = log_dir(tmp_path)
    folder.mkdir(parents=True)
    now = time.time()
    hour = int(now // 3600)
    for age in (0, 1, 2, 30, 50):  # hours ago
        line = json.dumps({"time": (hour - age) * 3600 + 1, "request_id": f"h{age}"}) + "\n"
        (folder / f"requests-{_stamp(hour - age)}-0.jsonl").write_text(line * 100)
    size = (folder / f"requests-{_stamp(hour)}-0.jsonl").stat().st_size
    deleted = prune(folder, Retention(max_bytes=1 << 30, retention_s=24 * 3600), now)
    assert sorted(p.name for p in deleted) == [f"requests-{_stamp(hour - 50)}-0.jsonl", f"requests-{_stamp(hour - 30)}-0.jsonl"]
    # Within the day's window, all three hours are read, rotated segments included.
    assert {r["request_id"] for r in read_log(tmp_path, since=now - 3 * 3600)} == {"h0", "h1", "h2"}
    # A size cap of two files keeps the newest two hours, and the current one even under a cap it alone exceeds.
    prune(folder, Retention(max_bytes=2 * size, retention_s=24 * 3600), now)
    assert {r["request_id"] for r in read_log(tmp_path)} == {"h0", "h1"}
    prune(folder, Retention(max_bytes=1, retention_s=24 * 3600), now)
    assert {r["request_id"] for r in read_log(tmp_path)} == {"h0"}
