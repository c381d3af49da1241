"""Recording the server's counters: each controller pass appends one scrape (reading an SLO adds none),
and a window counts their increases."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from specops.core import http
from specops.core.paths import ProjectPaths
from specops.slo import budget as b
from specops.slo import history
from specops.slo.engine import evaluate
from specops.spec import load_specs
from specops.spec.slos import SLO
from specops.state.storage import LocalStorage
from tests.slo.conftest import ENDPOINT


def local(root: Path) -> LocalStorage:
    return LocalStorage(ProjectPaths(root).state_dir)


COUNTERS = {"text": "", "failures": 0}  # failures: how many GETs still to answer 503


class FakeMetrics(BaseHTTPRequestHandler):
    def do_GET(self):  # http.server's name
        body = COUNTERS["text"].encode()
        status = 503 if COUNTERS["failures"] > 0 else 200
        COUNTERS["failures"] -= status == 503
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def served(project: Path):
    """A /metrics answering on loopback, and the endpoint's config.json pointing at it, as a running server leaves it."""
    COUNTERS["failures"] = 0
    server = HTTPServer(("127.0.0.1", 0), FakeMetrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state = ProjectPaths(project).endpoint(ENDPOINT)
    state.mkdir(parents=True)
    (state / "config.json").write_text(json.dumps({"port": server.server_address[1]}))
    yield project
    server.shutdown()


def counters(good: int, bad: int) -> str:
    return (f'specops_requests_total{{deployment="blue",status="2xx"}} {good}\n'
            f'specops_errors_total{{deployment="blue"}} {bad}\n')


def test_each_scrape_pass_records_a_sample_reading_adds_none_and_the_window_counts_increases(served: Path):
    specs = load_specs(served)
    slo = specs.get(SLO, "scoring-slo")
    COUNTERS["text"] = counters(400, 1)
    assert history.record_scrapes(specs) == []
    first = evaluate(specs, slo)[0]
    assert (first.events, first.bad, first.status) == (401, 1, b.OK)
    COUNTERS["text"] = counters(1000, 6)
    assert evaluate(specs, slo)[0].events == 401  # whoever asks, the history does not grow
    history.record_scrapes(specs)
    second = evaluate(specs, slo)[0]
    assert (second.events, second.bad, second.status) == (1006, 6, b.EXHAUSTED)
    assert len(history.read_samples(local(served), ENDPOINT)) == 2


def test_a_stopped_server_adds_no_sample_and_says_so(served: Path):
    (ProjectPaths(served).endpoint(ENDPOINT) / "config.json").write_text(json.dumps({"port": 9}))  # nothing listens there
    specs = load_specs(served)
    [problem] = history.record_scrapes(specs)
    assert problem.startswith(f"SLO history of {ENDPOINT}: could not scrape http://127.0.0.1:9/metrics")
    [availability, _] = evaluate(specs, specs.get(SLO, "scoring-slo"))
    assert availability.status == b.NO_DATA and history.read_samples(local(served), ENDPOINT) == []
    assert "the controller running beside it" in availability.note


def test_a_line_still_being_written_is_skipped(project: Path):
    history.append_sample(local(project), ENDPOINT, {"blue": {"good": 1, "bad": 0}}, at=1.0)
    with history.history_path(project, ENDPOINT).open("a") as out:
        out.write('{"time": 2.0, "coun')
    assert [s["time"] for s in history.read_samples(local(project), ENDPOINT)] == [1.0]


def metrics_url(project: Path) -> str:
    return f"http://127.0.0.1:{json.loads((ProjectPaths(project).endpoint(ENDPOINT) / 'config.json').read_text())['port']}/metrics"


def test_a_scrape_answered_503_is_retried(served: Path):
    COUNTERS["text"], COUNTERS["failures"] = counters(7, 1), 2
    assert history.scrape_counts(metrics_url(served)) == {"blue": {"good": 7.0, "bad": 1.0}}
    assert COUNTERS["failures"] == 0  # both 503s were answered, the third GET got the counts


def test_a_scrape_is_retried_after_a_refused_connection(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), FakeMetrics, bind_and_activate=False)
    server.server_bind()  # bound but not listening: a connection is refused
    COUNTERS["text"], COUNTERS["failures"] = counters(7, 1), 0
    listening: list[threading.Thread] = []
    sleep = http._CappedRetry.sleep

    def listen_then_sleep(retry, response=None):  # urllib3 sleeps before each retry: start listening then
        if not listening:
            server.server_activate()
            listening.append(threading.Thread(target=server.serve_forever, daemon=True))
            listening[0].start()
        sleep(retry, response)

    monkeypatch.setattr(http._CappedRetry, "sleep", listen_then_sleep)
    try:
        counts = history.scrape_counts(f"http://127.0.0.1:{server.server_address[1]}/metrics")
    finally:
        if listening:
            server.shutdown()
        server.server_close()
    assert counts == {"blue": {"good": 7.0, "bad": 1.0}} and len(listening) == 1


def test_an_answer_that_is_not_metrics_adds_no_sample(served: Path):
    COUNTERS["text"] = "<html><body>some other program on the port</body></html>\n"
    specs = load_specs(served)
    [problem] = history.record_scrapes(specs)
    assert problem.startswith(f"SLO history of {ENDPOINT}: could not scrape {metrics_url(served)}: ")
    assert "did not answer in the Prometheus text format" in problem
    [availability, _] = evaluate(specs, specs.get(SLO, "scoring-slo"))
    assert availability.status == b.NO_DATA and history.read_samples(local(served), ENDPOINT) == []
