"""The endpoint server under faults, over real HTTP: bad rows, hostile headers and bodies, broken state files,
dead workers and a parent killed outright."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from specops.serving.traffic import set_traffic, traffic_file
from tests.serving.conftest import Server, counter, free_port, process_gone, rows, start_server, stop_server

pytestmark = pytest.mark.xdist_group("serving-faults")

COLUMNS = ["income", "score", "region"]
# One deployment, out-of-range values flagged through to the model (so a bad row reaches it), one worker.
LENIENT = """
apiVersion: specops/v1
kind: Endpoint
metadata: {name: lenient}
spec:
  deployments:
    - {name: blue, model: tiny@champion}
    - {name: green, model: tiny@1}
  traffic: {blue: 100}
  server: {out_of_range: flag, max_wait_ms: 20}
"""


@pytest.fixture(scope="module")
def project(project: Path) -> Path:
    (project / "specs" / "lenient.yaml").write_text(LENIENT.lstrip())
    return project


@pytest.fixture(scope="module")
def server(project: Path):
    running = start_server(project, "lenient", workers=1)
    yield running
    stop_server(running)


def split(*data: list) -> dict:
    return {"input_data": {"columns": COLUMNS, "data": [list(r) for r in data]}}


def good(n: int = 1, seed: int = 1) -> dict:
    return split(*rows(n, seed)[COLUMNS].values.tolist())


def test_a_row_the_model_cannot_score_is_a_422_naming_it_and_no_server_error(server: Server):
    errors = counter(server, "specops_errors_total", deployment="blue")
    rejected = counter(server, "specops_requests_total", deployment="blue", status="4xx")
    data = rows(3, 2)[COLUMNS].values.tolist()
    data[2][0] = -1.0  # log1p(-1) = -inf: the model raises
    response = server.post("/score", split(*data))
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["row"] == 2 and "feature log_income is -inf" in answer["error"] and "blue" in answer["error"]
    assert "Traceback" not in response.text
    assert counter(server, "specops_errors_total", deployment="blue") == errors  # not the server's fault
    assert counter(server, "specops_requests_total", deployment="blue", status="4xx") == rejected + 1


def test_good_requests_batched_with_bad_rows_are_all_answered(server: Server):
    """Many clients at once, a third of them sending a row the model fails on: only those fail."""
    outcomes: dict[str, list[int]] = {"good": [], "bad": []}

    def client(kind: str, seed: int) -> None:
        body = good(2, seed)
        if kind == "bad":
            body["input_data"]["data"][1][0] = -1.0  # log1p(-1) = -inf: the model raises
        with requests.Session() as session:
            for _ in range(10):
                outcomes[kind].append(session.post(server.url + "/score", json=body, timeout=30,
                                                   headers={"Authorization": f"Bearer {server.key}"}).status_code)

    threads = [threading.Thread(target=client, args=("bad" if i % 3 == 0 else "good", i)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes["good"] == [200] * 80
    assert outcomes["bad"] == [422] * 40


def test_flagged_rows_are_scored_and_the_log_says_why(server: Server):
    data = rows(1, 3)[COLUMNS].values.tolist()
    data[0][2] = "mars"
    response = server.post("/score", split(*data), x_request_id="flagged-1")
    assert response.status_code == 200
    from specops.serving.inference_log import read_log

    deadline = time.monotonic() + 10
    while not (logged := [r for r in read_log(server.state_dir) if r["request_id"] == "flagged-1"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert logged and logged[0]["flags"] == {"region": "'mars' is not one of north, south"}


def test_hostile_headers_and_bodies_get_json_answers_without_tracebacks(server: Server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/score")
    connection.putheader("Authorization", b"Bearer \xff\xfe\xfd")
    connection.putheader("Content-Type", "application/json")
    payload = json.dumps(good()).encode()
    connection.putheader("Content-Length", str(len(payload)))
    connection.endheaders(payload)
    answer = connection.getresponse()
    assert answer.status == 401 and "missing or wrong key" in json.loads(answer.read())["error"]
    connection.close()
    huge = server.post("/score", data=b'{"data": [{"income": 1.0, "score": 7' + b"0" * 399 + b', "region": "north"}]}',
                       Content_Type="application/json")
    assert huge.status_code == 400 and huge.json()["field"] == "data[0].score"
    deep = server.post("/feedback", data=b"[" * 100_000 + b"]" * 100_000, Content_Type="application/json")
    assert deep.status_code == 400 and deep.json()["field"] == "body"
    duplicate = server.post("/score", {"input_data": {"columns": [*COLUMNS, "income"], "data": [[1.0, 700, "north", 2.0]]}})
    assert duplicate.status_code == 400 and "'income' appears more than once" in duplicate.json()["error"]
    many = server.post("/score", good(1001))  # the default server.max_rows_per_request is 1000
    assert many.status_code == 413 and "1001 rows; at most 1000 per request" in many.json()["error"]
    assert server.get("/liveness").status_code == 200


def test_a_broken_traffic_file_is_reported_and_the_last_good_weights_stay(server: Server):
    assert counter(server, "specops_state_file_fault", file="traffic.json") == 0
    traffic_file(server.state_dir).write_text("[]")
    deadline = time.monotonic() + 10
    while counter(server, "specops_state_file_fault", file="traffic.json") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counter(server, "specops_state_file_fault", file="traffic.json") == 1
    ready = server.get("/readiness").json()
    assert "traffic.json" in ready["faults"] and "keeping the last good one" in ready["faults"]["traffic.json"]
    assert {server.post("/score", good()).headers["azureml-model-deployment"] for _ in range(5)} == {"blue"}
    set_traffic(server.state_dir, ["blue", "green"], {"green": 100})  # the next good write is followed
    deadline = time.monotonic() + 10
    while server.post("/score", good()).headers["azureml-model-deployment"] != "green" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {server.post("/score", good()).headers["azureml-model-deployment"] for _ in range(20)} == {"green"}
    assert counter(server, "specops_state_file_fault", file="traffic.json") == 0
    assert "faults" not in server.get("/readiness").json()
    set_traffic(server.state_dir, ["blue", "green"], {"blue": 100})


def test_a_keys_file_rewritten_in_place_keeps_serving_with_the_last_good_keys(server: Server):
    key, path = server.key, server.state_dir / "keys.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # what an editor's in-place save looks like halfway
    try:
        time.sleep(1.2)  # past the checker's recheck interval: the next request rereads the file
        assert all(server.post("/score", good(), key=key).status_code == 200 for _ in range(5))
        assert counter(server, "specops_state_file_fault", file="keys.json") == 1
    finally:
        path.write_text(text)
    os.utime(path)
    time.sleep(1.2)
    assert server.post("/score", good(), key=key).status_code == 200
    assert counter(server, "specops_state_file_fault", file="keys.json") == 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(c) for c in children.read().split()]
    except OSError:
        return []


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().decode(errors="replace")
    except OSError:
        return ""


def test_a_worker_killed_outright_is_reported_with_its_signal(project: Path):
    running = start_server(project, "lenient", workers=1)
    try:
        worker = next(p for p in _children(running.process.pid) if "spawn_main" in _command(p))
        os.kill(worker, signal.SIGKILL)
        assert running.process.wait(timeout=60) == 1
        output = running.process.stdout.read()
        assert f"worker {worker} was killed by SIGKILL; stopping the endpoint" in output, output
    finally:
        stop_server(running)


def test_workers_die_with_a_parent_killed_while_they_load(project: Path):
    port = free_port()
    parent = subprocess.Popen([sys.executable, "-m", "specops.serving", str(project), "lenient", "--port", str(port),
                               "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(workers := [p for p in _children(parent.pid) if "spawn_main" in _command(p)]) < 2:
            assert time.monotonic() < deadline and parent.poll() is None, "no workers started"
            time.sleep(0.01)
        os.kill(parent.pid, signal.SIGKILL)  # the workers are still importing and loading models
        parent.wait()
        assert all(process_gone(worker) for worker in workers), "a worker outlived its server"
    finally:
        parent.kill()
        parent.wait()


def test_a_server_restarted_mid_rollout_routes_the_recorded_weights(project: Path):
    """`rollout status` shows what the rollout recorded; a restarted server must route that, not the spec's start."""
    from specops.project import Project
    from specops.serving.server import prepare
    from specops.serving.traffic import read_traffic
    from specops.state.records import PAUSED, RolloutRecord
    from specops.state.storage import open_storage
    from specops.state.store import StateStore

    (project / "specs" / "restarted.yaml").write_text(LENIENT.replace("name: lenient", "name: restarted").lstrip())
    specs = Project(project).specs
    record = RolloutRecord(endpoint="restarted", strategy="canary", stable="blue", canary="green", model="tiny",
                           stable_version="2", canary_version="1", status=PAUSED, weights={"blue": 80, "green": 20})
    StateStore(open_storage(specs), specs.env).save_rollout(record)
    prepare(specs, "restarted", port=free_port(), workers=1)
    assert read_traffic(specs.paths.endpoint("restarted")) == ({"blue": 80, "green": 20}, {})
    record = StateStore(open_storage(specs), specs.env).rollout("restarted")
    record.status = "Healthy"  # finished: the spec is where a new server begins again
    StateStore(open_storage(specs), specs.env).save_rollout(record)
    prepare(specs, "restarted", port=free_port(), workers=1)
    assert read_traffic(specs.paths.endpoint("restarted")) == ({"blue": 100}, {})


def test_feedback_labels_and_duplicate_keys_are_checked_at_the_door(server: Server):
    """The label is checked against the Dataset's target column (y: int, allowed 0 or 1); a key twice is a 400."""
    for label, status in (({"nested": 1}, 400), ("1", 400), (2, 422), (True, 400)):
        answer = server.post("/feedback", {"request_id": "r1", "label": label})
        assert answer.status_code == status and answer.json()["field"] == "body.label", (label, answer.text)
    listed = server.post("/feedback", [{"request_id": "r1", "label": 1}, {"request_id": "r2", "label": 7}])
    assert listed.status_code == 422 and listed.json()["field"] == "[1].label"
    nan = server.post("/feedback", data=b'{"request_id": "r1", "label": NaN}', Content_Type="application/json")
    assert nan.status_code == 400 and nan.json()["field"] == "body.label"
    assert server.post("/feedback", {"request_id": "r1", "label": 1}).status_code == 202
    twice = server.post("/feedback", data=b'{"request_id": "r1", "label": 1, "label": 0}', Content_Type="application/json")
    assert twice.status_code == 400 and "'label' appears more than once" in twice.json()["error"]
    records = server.post("/score", data=b'{"data": [{"income": 1.0, "score": 700, "region": "north", "score": 1}]}',
                          Content_Type="application/json")
    assert records.status_code == 400 and "'score' appears more than once" in records.json()["error"]


# --- fault injection: hostile load beside good clients (bounded, loopback, a few seconds) ---------

def _good_clients(server: Server, stop: threading.Event, outcomes: list, clients: int = 2) -> list[threading.Thread]:
    """Clients sending good single-row requests back to back until `stop`; each outcome a status code or an error."""
    def client(seed: int) -> None:
        body = good(1, seed)
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    outcomes.append(session.post(server.url + "/score", json=body, timeout=30,
                                                 headers={"Authorization": f"Bearer {server.key}"}).status_code)
                except requests.RequestException as exc:
                    outcomes.append(repr(exc))

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def _run_beside(server: Server, hostile, seconds: float = 2.0) -> list:
    stop, outcomes = threading.Event(), []
    threads = _good_clients(server, stop, outcomes)
    try:
        hostile(stop, seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return outcomes


def test_slowloris_costs_no_good_request(server: Server):
    """200 connections trickle a request's headers a few bytes at a time while good clients run."""
    def slowloris(stop: threading.Event, seconds: float) -> None:
        import socket

        sockets = []
        try:
            for _ in range(200):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                sockets.append(sock)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for i, sock in enumerate(sockets):
                    try:
                        sock.sendall(f"X-Slow-{i}: a\r\n".encode())
                    except OSError:
                        pass  # the server may close a slow client: that is allowed, it is not a good request
                time.sleep(0.2)
        finally:
            for sock in sockets:
                sock.close()

    outcomes = _run_beside(server, slowloris)
    assert outcomes and all(o == 200 for o in outcomes), [o for o in outcomes if o != 200][:5]


def test_a_burst_and_a_large_request_client_cost_no_good_request(server: Server):
    """64 clients firing at once, then a client sending 1,000-row requests back to back: good clients get 200s."""
    hostile_answers: list[int] = []

    def burst_then_large(stop: threading.Event, seconds: float) -> None:
        body, headers = good(1, 9), {"Authorization": f"Bearer {server.key}"}

        def one() -> None:  # each its own connection, as 64 separate clients
            hostile_answers.append(requests.post(server.url + "/score", json=body, headers=headers, timeout=30).status_code)

        burst = [threading.Thread(target=one) for _ in range(64)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join(60)
        large = json.dumps(good(1000, 10)).encode()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            hostile_answers.append(server.post("/score", data=large, Content_Type="application/json").status_code)

    outcomes = _run_beside(server, burst_then_large)
    assert outcomes and all(o == 200 for o in outcomes), [o for o in outcomes if o != 200][:5]
    assert hostile_answers.count(200) == len(hostile_answers) >= 65  # the burst and the large requests answered too
