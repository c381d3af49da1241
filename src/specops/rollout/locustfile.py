"""Locust user for a specops endpoint: single-row `POST /score` as an Azure ML client sends it.

Run in its own process (locust monkeypatches the standard library with gevent,
so specops never imports it); `specops.rollout.loadtest.run_load_test` starts it:

    SPECOPS_ENDPOINT_KEY=<key> python -m locust -f locustfile.py --headless --host http://127.0.0.1:5800 \\
        --rows data/loans.csv [--deployment green] [--column-types '{"score": "int"}'] [--label-column y] -u 4 -t 10s

Each request is one row drawn at random from the CSV (the first MAX_ROWS rows).
With `--deployment` every request carries `azureml-model-deployment`, so the
named deployment answers whatever its traffic weight; an answer from another
deployment counts as a failure. With `--label-column` each answer's label is
sent back through `POST /feedback`, so analysis can measure accuracy. With
`--answers-log` every answer is appended as `time,deployment,status` (benchmarks).
"""
from __future__ import annotations

import csv
import json
import os
import random
import time
import uuid

from locust import FastHttpUser, events, task

KEY_VARIABLE = "SPECOPS_ENDPOINT_KEY"  # the key travels in the environment, never on a command line `ps` shows
DEPLOYMENT_HEADER = "azureml-model-deployment"
MAX_ROWS = 10_000
FEEDBACK_BATCH = 20  # labels per POST /feedback
REFUSED_BACKOFF_S = 0.05  # after a refused connection, as clients do: a hot retry loop would starve the server's cores


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--rows", default="", help="CSV of input rows (a header line, then one row per line)")
    parser.add_argument("--deployment", default="", help="send every request to this deployment (azureml-model-deployment)")
    parser.add_argument("--column-types", default="{}", help='JSON {column: int|float|str|bool}; other columns are guessed')
    parser.add_argument("--label-column", default="", help="send this column back as the label through POST /feedback")
    parser.add_argument("--answers-log", default="", help="append time,deployment,status for every answer to this file")
    parser.add_argument("--errors-file", default="", help="write {failure message: occurrences} of /score here at exit")


class Rows:
    """Request bodies built once per process: each user only picks one at random."""

    def __init__(self, path: str, types: dict[str, str], label_column: str):
        with open(path, newline="") as handle:
            records = [record for _, record in zip(range(MAX_ROWS), csv.DictReader(handle))]
        if not records:
            raise SystemExit(f"no rows in {path}")
        self.bodies = []
        for record in records:
            label = _value(record.get(label_column, ""), types.get(label_column)) if label_column else None
            row = {name: _value(text, types.get(name)) for name, text in record.items() if name != label_column}
            self.bodies.append((json.dumps({"input_data": [row]}), label))


def _value(text: str, kind: str | None):
    """A CSV field as the JSON value the server checks: by its declared type, else the narrowest that parses."""
    if text == "":
        return None
    if kind == "str":
        return text
    if kind == "bool":
        return text.strip().lower() in ("1", "true", "yes")
    for parse in (int, float):  # the server takes 3 for a float and 3.0 for an int
        try:
            return parse(text)
        except ValueError:
            continue
    return text


_rows: Rows | None = None
_environment = None


@events.init.add_listener
def _load_rows(environment, **_) -> None:
    global _rows, _environment
    _environment, options = environment, environment.parsed_options
    if options is None:  # imported by `locust --list` or a test harness: nothing to load
        return
    if not options.rows:
        raise SystemExit("--rows is required: a CSV of input rows")
    _rows = Rows(options.rows, json.loads(options.column_types), options.label_column)


@events.quit.add_listener
def _write_errors(**_) -> None:
    """--json-file has counts, not reasons: a failed load test should say why its requests failed."""
    options = _environment.parsed_options if _environment is not None else None
    if _environment is None or options is None or not options.errors_file:
        return
    errors: dict[str, int] = {}
    for error in _environment.runner.stats.errors.values():
        if error.name == "/score":  # locust keeps the exception itself for some failures: its text is the reason
            errors[str(error.error)] = errors.get(str(error.error), 0) + error.occurrences
    with open(options.errors_file, "w") as handle:
        json.dump(errors, handle)


class EndpointUser(FastHttpUser):
    """Closed loop: each user sends its next request when the last one is answered."""

    backoff = 0.0

    def wait_time(self) -> float:
        return self.backoff

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.deployment = options.deployment
        self.headers = {"Authorization": f"Bearer {os.environ.get(KEY_VARIABLE, '')}", "Content-Type": "application/json"}
        if self.deployment:
            self.headers[DEPLOYMENT_HEADER] = self.deployment
        self.label_column = options.label_column
        self.labels: list[dict] = []
        self.answers = open(options.answers_log, "a", buffering=1) if options.answers_log else None

    def on_stop(self) -> None:
        self._send_labels()
        if self.answers is not None:
            self.answers.close()

    @task
    def score(self) -> None:
        assert _rows is not None, "_load_rows reads them before any user starts (or exits)"
        body, label = random.choice(_rows.bodies)
        request_id = uuid.uuid4().hex
        headers = {**self.headers, "x-request-id": request_id}
        with self.client.post("/score", data=body, headers=headers, name="/score", catch_response=True) as response:
            answered_by = response.headers.get(DEPLOYMENT_HEADER, "") if response.headers else ""
            if self.answers is not None:
                self.answers.write(f"{time.time():.6f},{answered_by},{response.status_code}\n")
            self.backoff = REFUSED_BACKOFF_S if response.status_code == 0 else 0.0  # 0: no HTTP answer at all
            if response.status_code == 200 and self.deployment and answered_by != self.deployment:
                response.failure(f"answered by {answered_by!r}, not {self.deployment!r}")
        if self.label_column and response.status_code == 200 and label is not None:
            self.labels.append({"request_id": request_id, "label": label})
            if len(self.labels) >= FEEDBACK_BATCH:
                self._send_labels()

    def _send_labels(self) -> None:
        if self.labels:
            self.client.post("/feedback", data=json.dumps(self.labels), headers=self.headers, name="/feedback")
            self.labels = []
