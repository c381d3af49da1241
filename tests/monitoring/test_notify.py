"""The drift webhook over real HTTP: credentials, retries, bounds, and a secret URL that never shows."""
from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from specops.core import http
from specops.monitoring.runner import notify

REF = "${TEST_NOTIFY_WEBHOOK}"
SECRET_PATH = "/services/T0001/B0001/s3cr3t-t0ken"  # as in a Slack webhook, the path itself is a credential


class Hook:
    """A webhook on loopback answering from a script of (status, headers), the last one repeated;
    it keeps the path, headers and body of each request."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = [(204, {})]
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers = hook.script[min(len(hook.received), len(hook.script)) - 1]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}{SECRET_PATH}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    running = Hook()
    thread = threading.Thread(target=running.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every host name resolved while the test runs."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        seen.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return seen


def leaks(texts: list[str], url: str, port: int) -> list[str]:
    """The pieces of a secret URL found in any of `texts`."""
    pieces = [url, SECRET_PATH, "s3cr3t", "alert-bot", "p@ss", "p%40ss", f":{port}"]
    return [piece for piece in pieces for text in texts if piece in text]


def test_credentials_in_the_url_go_as_basic_auth_to_the_host_alone(hook: Hook, lookups: list[str], monkeypatch):
    monkeypatch.setenv("TEST_NOTIFY_WEBHOOK", hook.url("alert-bot:p%40ss@"))
    outcome = notify(REF, {"monitor": "m"})
    assert outcome == f"posted to {REF} (HTTP 204)"
    [request] = hook.received
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alert-bot:p@ss").decode()
    assert request["headers"]["Host"] == f"127.0.0.1:{hook.port}"
    assert request["path"] == SECRET_PATH and request["body"] == {"monitor": "m"}
    assert set(lookups) == {"127.0.0.1"}  # the user name and password were never looked up as a host name


def test_a_webhook_answering_503_then_200_is_retried(hook: Hook, monkeypatch):
    hook.script = [(503, {}), (200, {})]
    monkeypatch.setenv("TEST_NOTIFY_WEBHOOK", hook.url())
    assert notify(REF, {"monitor": "m"}) == f"posted to {REF} (HTTP 200)"
    assert [r["body"] for r in hook.received] == [{"monitor": "m"}] * 2


def test_a_retry_after_is_obeyed_only_up_to_the_cap(hook: Hook):
    # Obeyed in full, this would wait an hour (and the test time out).
    hook.script = [(429, {"Retry-After": "3600"}), (204, {})]
    assert http.post_json(hook.url(), {}, replace(http.WEBHOOK, max_wait_s=0.1)) == 204
    assert len(hook.received) == 2


def test_a_webhook_failing_with_500_forever_fails_cleanly(hook: Hook, monkeypatch, caplog, capsys):
    hook.script = [(500, {})]
    url = hook.url("alert-bot:p%40ss@")
    monkeypatch.setenv("TEST_NOTIFY_WEBHOOK", url)
    caplog.set_level(logging.DEBUG)
    outcome = notify(REF, {"monitor": "m"})
    assert outcome == f"notify {REF} failed: HTTP 500 ({http.WEBHOOK.attempts} attempts)"
    assert len(hook.received) == http.WEBHOOK.attempts
    captured = capsys.readouterr()
    assert leaks([outcome, captured.out, captured.err, *(r.getMessage() for r in caplog.records)], url, hook.port) == []


def test_a_refused_connection_is_retried_then_reported_without_the_url(monkeypatch, caplog, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://alert-bot:p%40ss@127.0.0.1:{port}{SECRET_PATH}"
    monkeypatch.setenv("TEST_NOTIFY_WEBHOOK", url)
    caplog.set_level(logging.DEBUG)
    outcome = notify(REF, {})
    assert outcome == f"notify {REF} failed: could not connect ({http.WEBHOOK.attempts} attempts)"
    captured = capsys.readouterr()
    assert leaks([outcome, captured.out, captured.err, *(r.getMessage() for r in caplog.records)], url, port) == []


def test_a_redirect_is_a_failure_not_followed(hook: Hook, monkeypatch):
    hook.script = [(302, {"Location": "http://127.0.0.1:1/elsewhere"})]
    monkeypatch.setenv("TEST_NOTIFY_WEBHOOK", hook.url())
    assert notify(REF, {}) == f"notify {REF} failed: HTTP 302 (1 attempt)"
    assert len(hook.received) == 1


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "not an http(s) URL"),
    ("ftp://127.0.0.1/hook", "not an http(s) URL"),
    ("http://[bad/s3cr3t", "not a valid URL"),
    ("http:///s3cr3t", "not a valid URL: no host"),
])
def test_only_valid_http_urls_are_posted_to(url: str, reason: str, monkeypatch):
    monkeypatch.setenv("TEST_NOTIFY_WEBHOOK", url)
    assert notify(REF, {}) == f"notify {REF} failed: {reason}"
