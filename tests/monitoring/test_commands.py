"""`specops monitor run` and `specops monitor report`, through the real command group."""
from __future__ import annotations

from click.testing import CliRunner

from specops.cli import main
from tests.monitoring.conftest import FIRE, drifted_day


def test_run_then_report_lists_the_window_with_what_alerted(project, webhook):
    drifted_day(project)
    cli = CliRunner()
    ran = cli.invoke(main, ["monitor", "run", "credit-drift", "--at", FIRE.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "--root", str(project)])
    assert ran.exit_code == 0, ran.output
    assert "credit-drift: drift (1000 rows" in ran.output and "income: normalized_wasserstein_distance" in ran.output
    assert "action: posted to ${TEST_DRIFT_WEBHOOK}" in ran.output and webhook.url not in ran.output

    listed = cli.invoke(main, ["monitor", "report", "--root", str(project)])
    assert listed.exit_code == 0, listed.output
    [header, line] = listed.output.splitlines()
    assert header.split()[:4] == ["window", "end", "monitor", "status"]
    assert line.startswith(FIRE.isoformat()) and line.split()[3] == "income" and line.endswith("report.html")
    assert "no reports yet for monitor other" in cli.invoke(main, ["monitor", "report", "other", "--root", str(project)]).output


def test_an_unknown_monitor_is_a_clear_error(project):
    result = CliRunner().invoke(main, ["monitor", "run", "nope", "--root", str(project)])
    assert result.exit_code == 1 and "no Monitor named 'nope' (known: credit-drift)" in result.output
