"""`specops endpoint serve` runs the controller beside the server unless told not to."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import BIN
from tests.serving.conftest import free_port, make_project

CLOCK = Path(".specops") / "controller" / "clock.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("serve-controller") / "proj")


def serve(root: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([str(BIN / "specops"), "endpoint", "serve", "scoring", "--root", str(root), "--port", str(port),
                                "--workers", "1", "--interval", "0.5", *flags],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/liveness"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return process, url
        except requests.ConnectionError:
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not answer")


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.1)
    return path.exists()


def test_the_controller_runs_beside_the_server(tiny: Path):
    (tiny / CLOCK).unlink(missing_ok=True)
    process, url = serve(tiny, "--no-controller")
    try:
        assert not wait_for(tiny / CLOCK, 3)  # three controller intervals' worth: nobody ran a pass
    finally:
        process.terminate()
        process.wait(timeout=30)
    process, url = serve(tiny)
    try:
        assert wait_for(tiny / CLOCK, 30), "the controller never ran a pass"
        assert requests.get(url, timeout=5).status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
