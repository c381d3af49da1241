"""The session guard in tests/conftest.py: a specops process that outlives the tests fails the run."""
from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

LEAKY_TEST = '''
import subprocess, sys

def test_leaves_a_server_behind():
    # Its own session, as `specops apply` starts servers: nothing the test does stops it.
    subprocess.Popen([sys.executable, "-c", "import time, specops; time.sleep(300)"], start_new_session=True)

def test_stops_what_it_starts():
    process = subprocess.Popen([sys.executable, "-c", "import time, specops; time.sleep(300)"])
    process.terminate()
    process.wait()
'''


def test_a_process_that_outlives_the_session_fails_it(pytester, monkeypatch):
    monkeypatch.setenv("SPECOPS_TEST_LEFT_BEHIND_GRACE_S", "1")
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile(test_leaky=LEAKY_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*processes started by the tests outlived them*", "*import time, specops*"])


def test_a_session_that_stops_its_processes_passes(pytester, monkeypatch):
    monkeypatch.setenv("SPECOPS_TEST_LEFT_BEHIND_GRACE_S", "1")
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile(test_tidy=LEAKY_TEST.split("def test_leaves")[0] + "def test_stops" + LEAKY_TEST.split("def test_stops")[1])
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
