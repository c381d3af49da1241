"""An environment chosen on the command line reaches every process started for it (issue #9, item 1).

The tiny serving project gets a second local environment, `staging`, whose
overlay gives the endpoint another port and sends all traffic to `green`. The
server `specops apply` would start for staging is started the same way here
(daemon.start with the staging specs): it must serve staging's spec, and the
commands that manage it must find it under `--env staging`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.cli import main
from specops.core.paths import ProjectPaths
from specops.project import Project
from specops.serving import daemon
from specops.serving.traffic import read_traffic
from tests.serving.conftest import free_port, make_project

PROJECT = """
apiVersion: specops/v1
kind: Project
metadata: {{name: tiny}}
spec:
  environments:
    local: {{backend: local, values: {{port: {local}}}}}
    staging: {{backend: local, values: {{port: {staging}}}}}
"""
OVERLAY = """
  traffic: {% if env.name == "staging" %}{green: 100}{% else %}{blue: 60, green: 30, broken: 10}{% endif %}
  mirror_traffic: {shadow: 50}
  server: {max_request_bytes: 4096, port: {{ values.port }}, workers: 1}
"""


@pytest.fixture(scope="module")
def two_envs(tmp_path_factory) -> tuple[Path, int, int]:
    root = make_project(tmp_path_factory.mktemp("envs") / "proj")
    ports = free_port(), free_port()
    (root / "specs" / "project.yaml").write_text(PROJECT.format(local=ports[0], staging=ports[1]).lstrip())
    endpoint = root / "specs" / "endpoint.yaml"
    head = endpoint.read_text().split("  traffic:")[0]
    endpoint.write_text(head + OVERLAY.lstrip("\n"))
    yield root, *ports
    daemon.stop(ProjectPaths(root), "scoring")


def test_a_server_started_for_an_environment_serves_that_environment(two_envs):
    root, _, staging_port = two_envs
    staging = Project(root, "staging")
    info = daemon.start(staging.specs, "scoring")
    assert info["port"] == staging_port
    command = Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")
    assert command[-3:-1] == [b"--env", b"staging"]
    assert read_traffic(staging.paths.endpoint("scoring"))[0] == {"green": 100}  # staging's spec, not local's
    config = json.loads((staging.paths.endpoint("scoring") / "config.json").read_text())
    assert config["port"] == staging_port and config["traffic"] == {"green": 100}


def test_the_commands_that_manage_it_take_the_environment(two_envs):
    root, _, _ = two_envs
    cli = CliRunner()
    keys = cli.invoke(main, ["endpoint", "keys", "scoring", "--env", "staging", "--root", str(root)])
    assert keys.exit_code == 0, keys.output
    unknown = cli.invoke(main, ["endpoint", "stop", "scoring", "--env", "nope", "--root", str(root)])
    assert unknown.exit_code == 1 and "unknown environment 'nope'" in unknown.output
    rollout = cli.invoke(main, ["rollout", "status", "scoring", "--env", "staging", "--root", str(root)])
    assert rollout.exit_code == 1 and "declares no spec.rollout" in rollout.output
    stopped = cli.invoke(main, ["endpoint", "stop", "scoring", "--env", "staging", "--root", str(root)], env={"SPECOPS_ENV": ""})
    assert stopped.exit_code == 0 and "stopped" in stopped.output, stopped.output
