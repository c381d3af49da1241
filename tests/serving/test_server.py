"""The endpoint server over real HTTP: protocol, routing, mirroring, probes, metrics, log and feedback."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import requests

from specops.errors import SpecopsError
from specops.rollout.metrics import scrape, window
from specops.serving.inference_log import log_dir, read_log
from specops.serving.keys import regenerate_key
from specops.serving.traffic import read_traffic, set_traffic
from tests.serving.conftest import Server, counter, rows

pytestmark = pytest.mark.xdist_group("serving")

COLUMNS = ["income", "score", "region"]


def split_body(n: int = 1, seed: int = 1) -> dict:
    data = rows(n, seed)[COLUMNS]
    return {"input_data": {"columns": COLUMNS, "data": data.values.tolist()}}


def test_scores_the_azure_ml_formats_with_one_prediction_per_row(server: Server):
    split = server.post("/score", split_body(3))
    records = server.post("/score", {"data": rows(3, 1)[COLUMNS].to_dict("records")})
    assert split.status_code == records.status_code == 200
    assert len(split.json()) == 3 and all(p in (0, 1) for p in split.json())
    assert split.headers["azureml-model-deployment"] in ("blue", "green")


def test_missing_or_wrong_key_is_401(server: Server):
    assert server.post("/score", split_body(), key=None).status_code == 401
    assert server.post("/score", split_body(), key="not-the-key").status_code == 401
    assert server.post("/feedback", {"request_id": "x", "label": 1}, key=None).status_code == 401


def test_bad_bodies_are_400_naming_the_field(server: Server):
    malformed = server.post("/score", data=b"{not json", Content_Type="application/json")
    assert malformed.status_code == 400 and malformed.json()["field"] == "body"
    missing = server.post("/score", {"input_data": {"columns": ["income", "region"], "data": [[1.0, "north"]]}})
    assert missing.status_code == 400 and "score" in missing.json()["error"]
    assert missing.json()["field"] == "input_data.columns"
    wrong_type = server.post("/score", {"data": [{"income": "lots", "score": 700, "region": "north"}]})
    assert wrong_type.status_code == 400 and wrong_type.json()["field"] == "data[0].income"
    unknown_category = server.post("/score", {"data": [{"income": 1.0, "score": 700, "region": "mars"}]})
    assert unknown_category.status_code == 422 and unknown_category.json()["field"] == "data[0].region"


def test_oversized_body_is_413(server: Server):
    body = split_body(200)  # the test endpoint caps bodies at 4 KiB
    assert server.post("/score", body).status_code == 413


def test_deployment_header_targets_one_deployment_and_unknown_is_404(server: Server):
    for name in ("blue", "green", "shadow"):
        response = server.post("/score", split_body(), azureml_model_deployment=name)
        assert response.status_code == 200 and response.headers["azureml-model-deployment"] == name
    assert server.post("/score", split_body(), azureml_model_deployment="purple").status_code == 404
    broken = server.post("/score", split_body(), azureml_model_deployment="broken")
    assert broken.status_code == 503 and "tiny@99" in broken.json()["error"]


def test_traffic_split_is_honoured_and_the_broken_share_is_redistributed(server: Server):
    n = 300
    served = [server.post("/score", split_body()).headers["azureml-model-deployment"] for _ in range(n)]
    assert set(served) <= {"blue", "green"}  # never the broken one, never the mirror
    share = 60 / 90  # blue's weight among the ready live deployments
    sd = math.sqrt(n * share * (1 - share))
    assert abs(served.count("blue") - n * share) < 4 * sd  # a false alarm about once in 15,000 runs


def test_readiness_lists_the_broken_deployment_as_not_ready(server: Server):
    response = server.get("/readiness")
    assert response.status_code == 200
    deployments = response.json()["deployments"]
    assert deployments["blue"]["ready"] and deployments["blue"]["version"] == "2"
    assert not deployments["broken"]["ready"] and "tiny@99" in deployments["broken"]["error"]
    assert not deployments["stale"]["ready"]
    assert "trained on feature set loan-features@v0, but the specs declare loan-features@v1" in deployments["stale"]["error"]
    assert server.get("/liveness").status_code == 200


def test_mirror_answers_are_logged_never_returned(server: Server):
    ids = [f"mirror-{i}" for i in range(40)]
    for request_id in ids:
        response = server.post("/score", split_body(), x_request_id=request_id)
        assert response.headers["azureml-model-deployment"] != "shadow"
    records = _wait_for_log(server, lambda log: any(r["shadow"] for r in log if r["request_id"] in ids))
    shadowed = [r for r in records if r["request_id"] in ids and r["shadow"]]
    assert shadowed and all(r["deployment"] == "shadow" for r in shadowed)
    # n=40 at 50%: none mirrored would happen about once in 10^12 runs
    assert 0 < len(shadowed) <= len(ids)


def test_metrics_count_requests_errors_and_latency(server: Server):
    before = counter(server, "specops_requests_total", deployment="blue", status="2xx")
    before_bad = counter(server, "specops_requests_total", deployment="blue", status="4xx")
    before_count = counter(server, "specops_request_duration_seconds_count", deployment="blue")
    for _ in range(5):
        server.post("/score", split_body(), azureml_model_deployment="blue")
    server.post("/score", {"data": [{"income": 1.0}]}, azureml_model_deployment="blue")
    assert counter(server, "specops_requests_total", deployment="blue", status="2xx") == before + 5
    assert counter(server, "specops_requests_total", deployment="blue", status="4xx") == before_bad + 1
    assert counter(server, "specops_request_duration_seconds_count", deployment="blue") == before_count + 6
    assert counter(server, "specops_errors_total", deployment="blue") == 0
    assert counter(server, "specops_request_duration_seconds_bucket", deployment="blue", le="+Inf") == before_count + 6


def test_counts_are_summed_over_both_workers_whichever_answers_the_scrape(server: Server):
    url = server.url + "/metrics"
    before = scrape(url)
    ids = [f"spread-{i}" for i in range(20)]
    headers = {"Authorization": f"Bearer {server.key}", "azureml-model-deployment": "blue"}
    for request_id in ids:  # a new connection each: the kernel spreads them over the workers (SO_REUSEPORT)
        response = requests.post(server.url + "/score", json=split_body(), headers={**headers, "x-request-id": request_id}, timeout=30)
        assert response.status_code == 200
    assert _answered_by(server, ids) == {0, 1}  # all 20 on one worker: about once in 500,000 runs
    for _ in range(6):  # new connections again: whichever worker answers must count both workers' requests
        assert window(before, scrape(url), "blue").requests == len(ids)


def _answered_by(server: Server, ids: list[str], timeout_s: float = 10) -> set[int]:
    """The workers whose inference log files (requests-<hour>-<worker>.jsonl) hold these requests."""
    deadline, wanted = time.monotonic() + timeout_s, set(ids)
    while True:
        found = {}
        for path in log_dir(server.state_dir).glob("requests-*.jsonl"):
            for line in path.read_text().split("\n")[:-1]:  # complete lines: a worker may be writing the last
                request_id = json.loads(line)["request_id"]
                if request_id in wanted:
                    found[request_id] = int(path.stem.rsplit("-", 1)[1])
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return set(found.values())
        time.sleep(0.1)


def test_feedback_joins_the_logged_request(server: Server):
    response = server.post("/score", split_body(2), x_request_id="labelled-1")
    assert response.status_code == 200
    assert server.post("/feedback", {"request_id": "labelled-1", "label": 1}).status_code == 202
    assert server.post("/feedback", {"label": 1}).json()["field"] == "body.request_id"
    records = _wait_for_log(server, lambda log: any(r["request_id"] == "labelled-1" and "label" in r for r in log))
    live = [r for r in records if r["request_id"] == "labelled-1" and not r["shadow"]]
    assert [r["row"] for r in live] == [0, 1]
    assert all(r["label"] == 1 and set(r["inputs"]) == set(COLUMNS) for r in live)
    assert [r["prediction"] for r in live] == response.json()


def test_openapi_describes_the_raw_columns(server: Server):
    assert server.get("/swagger.json").status_code == 401
    spec = server.session.get(server.url + "/swagger.json", headers={"Authorization": f"Bearer {server.key}"}).json()
    record = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    properties = record["properties"]["data"]["items"]["properties"]
    assert properties["region"]["enum"] == ["north", "south"] and properties["score"]["type"] == "integer"


def test_a_regenerated_key_replaces_the_old_one(server: Server):
    old = server.key
    regenerate_key(server.state_dir, "primary")
    new = server.key
    deadline = time.monotonic() + 10
    while server.post("/score", split_body(), key=new).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.post("/score", split_body(), key=new).status_code == 200
    assert server.post("/score", split_body(), key=old).status_code == 401


def test_set_traffic_shifts_a_running_server_and_refuses_bad_weights(server: Server):
    deployments = ["blue", "green", "shadow", "broken", "stale"]
    original = read_traffic(server.state_dir)
    set_traffic(server.state_dir, deployments, {"green": 100})
    try:
        deadline = time.monotonic() + 10  # workers poll every 0.1 s
        served = []
        while time.monotonic() < deadline and served[-20:] != ["green"] * 20:
            served.append(server.post("/score", split_body()).headers["azureml-model-deployment"])
        assert served[-20:] == ["green"] * 20
    finally:
        set_traffic(server.state_dir, deployments, *original)
    for traffic, mirror, message in (({"blue": 90}, {}, "sum to 100"), ({"purple": 100}, {}, "no deployment named purple"),
                                     ({"blue": 100}, {"blue": 10}, "without live traffic")):
        with pytest.raises(SpecopsError, match=message):
            set_traffic(server.state_dir, deployments, traffic, mirror)


def test_unknown_endpoint_and_taken_port_are_clear_errors(server: Server):
    unknown = subprocess.run([sys.executable, "-m", "specops.serving", str(server.root), "nosuch"], capture_output=True, text=True,
                             timeout=120)
    assert unknown.returncode == 1 and "error: no Endpoint named 'nosuch' (known: scoring)" in unknown.stderr
    taken = subprocess.run([sys.executable, "-m", "specops.serving", str(server.root), "scoring", "--port", str(server.port)],
                           capture_output=True, text=True, timeout=120)
    assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{server.port}" in taken.stderr
    assert "Traceback" not in unknown.stderr + taken.stderr


def _wait_for_log(server: Server, condition, timeout_s: float = 10) -> list[dict]:
    """The log is written as answers go out; a shadow answer may land just after the response."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_log(server.state_dir)
        if condition(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)
