"""`specops slo status`: the table, JSON and Markdown, and a friendly error for an unknown SLO."""
from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from specops.cli import main
from tests.slo.conftest import record, write_log, write_scrapes


def run(*args: str):
    return CliRunner().invoke(main, ["slo", "status", *args])


def seeded(project: Path) -> Path:
    now = time.time()
    write_scrapes(project, [(now - 60, 993, 7)])
    write_log(project, [record(now - 30 - i, latency_ms=500.0 if i < 2 else 20.0) for i in range(100)])
    return project


def test_json_gives_every_objective_with_its_budget(project: Path):
    result = run("--root", str(seeded(project)), "--format", "json")
    assert result.exit_code == 0, result.output
    availability, latency = json.loads(result.output)
    assert (availability["objective"], availability["status"], availability["bad"], availability["budget"]) == \
        ("availability", "exhausted", 7, 5)
    assert (latency["events"], latency["bad"], latency["remaining"], latency["status"]) == (100, 2, 0.6, "ok")


def test_the_table_and_markdown_show_sli_target_budget_and_burn_rate(project: Path, monkeypatch):
    from specops.cli.options import console

    monkeypatch.setattr(console, "width", 160)  # a terminal wide enough that no cell wraps
    seeded(project)
    text = run("scoring-slo", "--root", str(project)).output
    assert "exhausted" in text and "99.300%" in text and ">= 99.5%" in text and "-40.0%" in text
    markdown = run("--root", str(project), "--format", "markdown").output.splitlines()
    assert markdown[0].startswith("| SLO | objective | window | SLI | target |")
    assert markdown[2] == "| scoring-slo | availability | PT1H | 99.300% | >= 99.5% | 7 / 5 of 1000 | -40.0% | 1.40 | exhausted |"


def test_an_unknown_slo_is_a_one_line_error(project: Path):
    result = run("nope", "--root", str(project))
    assert result.exit_code == 1 and "no SLO named 'nope' (known: scoring-slo)" in result.output
    assert "Traceback" not in result.output
