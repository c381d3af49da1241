"""The controller on Azure ML (issue 10, item 15): the workspace runs the monitors, the controller acts on what
they found. A monitor run that breached its thresholds (tagged as Azure ML tags it) queues a retraining, which is
a new run of the pipeline's job; when that job has finished, an apply walks the new challenger's canary. prod,
promoted from dev, retrains in dev. Everything it did is in the audit log, once."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from click.testing import CliRunner

from specops.cli import main
from specops.controller.loop import REQUESTED, SUBMITTED, Controller
from specops.governance.kpi import compute
from specops.project import Project
from tests.azureml.fake_azure import FakeAzureML
from tests.azureml.test_backend import HEALTHY, tag
from tests.azureml.test_promotion import Cloud, cloud  # noqa: F401  (the fixture)

pytestmark = pytest.mark.filterwarnings("ignore")
MONITOR = "credit-drift"


def submitted_jobs(workspace: FakeAzureML) -> list[str]:
    return sorted(p.split("/")[2] for m, p in workspace.requests if m == "PUT" and p.startswith("/jobs/")
                  and "-drift-" in p)


def finish(workspace: FakeAzureML, job: str, status: str = "Completed") -> None:
    workspace.store[f"/jobs/{job}".lower()]["properties"]["status"] = status


def actions(root: Path, env: str) -> list[str]:
    return [e["action"] for e in Project(root, env).audit.entries() if e.get("env") == env
            and e["action"] in ("drift_alert", "retrain_started", "retrain_finished", "retrain_failed", "promote")]


def dev_applied(project: Path, cloud: Cloud) -> None:
    """dev applied on v3, and the controller has looked at its monitors once (what ran before is history)."""
    tag(cloud.dev, 3, "champion"), tag(cloud.dev, 3, "challenger")
    Project(project, "dev").apply()
    cloud.dev.seed_monitor_run(MONITOR, "before-the-controller", breached_signal="data-drift",
                               created=datetime.now(UTC) - timedelta(days=1))
    assert Controller(Project(project, "dev")).tick() == []


def test_a_breached_monitor_run_retrains_once_and_the_finished_job_is_rolled_out(project: Path, cloud: Cloud):
    dev_applied(project, cloud)
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-1")  # a quiet day
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-2", breached_signal="data-drift")
    cloud.dev.seed_monitor_run("another-monitor", "another-run", breached_signal="data-drift")
    lines: list[str] = []
    outcomes = Controller(Project(project, "dev"), report=lines.append).tick()
    assert [status for _, status in outcomes] == [SUBMITTED]
    (job,) = submitted_jobs(cloud.dev)
    assert any("run credit-drift-run-2 breached data_drift: retrain" in line for line in lines)
    alert = next(e for e in Project(project, "dev").audit.entries() if e["action"] == "drift_alert")
    assert (alert["run"], alert["signals"], alert["pipeline"]) == ("credit-drift-run-2", ["data_drift"], "credit-risk-training")
    # The next pass acts on nothing twice, and waits for the job.
    assert Controller(Project(project, "dev")).tick() == []
    assert submitted_jobs(cloud.dev) == [job]
    assert actions(project, "dev") == ["drift_alert", "retrain_started"]
    # The job registered v4 as challenger and finished: the pass after rolls it out through the canary.
    finish(cloud.dev, job)
    tag(cloud.dev, 3, "challenger", on=False), tag(cloud.dev, 4, "challenger")
    cloud.dev.series.update(HEALTHY)
    Controller(Project(project, "dev"), report=lines.append).tick()
    assert any(f"job {job} Completed" in line for line in lines)
    # Audited finished once its challenger is out: the apply's canary promoted it first.
    assert actions(project, "dev") == ["drift_alert", "retrain_started", "promote", "retrain_finished"]
    assert cloud.served(cloud.dev, "blue").endswith("/versions/4") and cloud.registry == ["3", "4"]
    reaction = next(k for k in compute(Project(project, "dev").specs) if k.name == "drift reaction time")
    assert reaction.detail == "median over 1 alert(s)"


def test_a_failed_retraining_job_is_audited_and_nothing_is_applied(project: Path, cloud: Cloud):
    dev_applied(project, cloud)
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-1", breached_signal="data-drift")
    Controller(Project(project, "dev")).tick()
    (job,) = submitted_jobs(cloud.dev)
    finish(cloud.dev, job, "Failed")
    puts = len([r for r in cloud.dev.requests if r[0] == "PUT"])
    Controller(Project(project, "dev")).tick()
    assert actions(project, "dev") == ["drift_alert", "retrain_started", "retrain_failed"]
    assert len([r for r in cloud.dev.requests if r[0] == "PUT"]) == puts


def test_drift_in_prod_requests_a_retraining_of_dev_and_the_dev_pass_submits_it(project: Path, cloud: Cloud):
    """prod trains nothing, and its credentials reach its own workspace only: its pass records the alert and the
    request; CI hands the request to dev's pass (`specops controller --once --json`, then `specops retrain`)."""
    dev_applied(project, cloud)
    Project(project, "prod").apply()
    assert Controller(Project(project, "prod")).tick() == []  # prod's first look
    cloud.prod.seed_monitor_run(MONITOR, "prod-drift-run-1", breached_signal="data-drift")
    result = CliRunner().invoke(main, ["controller", "--once", "--json", "--env", "prod", "--root", str(project)])
    assert result.exit_code == 0, result.output
    (requested,) = json.loads(result.stdout)
    assert (requested["pipeline"], requested["reason"], requested["status"]) == ("credit-risk-training", "drift", REQUESTED)
    assert submitted_jobs(cloud.dev) == submitted_jobs(cloud.prod) == []
    assert [e["action"] for e in Project(project, "prod").audit.entries() if e.get("env") == "prod"][-2:] == [
        "drift_alert", "retrain_requested"]
    outcomes = Controller(Project(project, "dev")).retrain(requested["pipeline"], requested["reason"], "requested by prod")
    assert [status for _, status in outcomes] == [SUBMITTED] and len(submitted_jobs(cloud.dev)) == 1


def test_runs_before_the_first_look_are_history_and_two_breaches_retrain_once(project: Path, cloud: Cloud):
    dev_applied(project, cloud)  # its breached run of yesterday was not acted on
    assert actions(project, "dev") == []
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-1", breached_signal="data-drift")
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-2", breached_signal="prediction-drift")
    outcomes = Controller(Project(project, "dev")).tick()
    assert sorted(status for _, status in outcomes) == ["coalesced", SUBMITTED]  # one job for both
    assert len(submitted_jobs(cloud.dev)) == 1
    assert actions(project, "dev") == ["drift_alert", "drift_alert", "retrain_started"]


def test_a_vanished_job_is_a_failed_retraining_and_an_apply_that_fails_is_tried_again(project: Path, cloud: Cloud):
    dev_applied(project, cloud)
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-1", breached_signal="data-drift")
    Controller(Project(project, "dev")).tick()
    (job,) = submitted_jobs(cloud.dev)
    del cloud.dev.store[f"/jobs/{job}".lower()]  # deleted from the workspace
    lines: list[str] = []
    Controller(Project(project, "dev"), report=lines.append).tick()
    assert actions(project, "dev")[-1] == "retrain_failed" and any(f"job {job} NotFound" in line for line in lines)
    # A finished job whose apply cannot run now (another apply holds the lock): recorded only once rolled out.
    cloud.clock.sleep(3600)  # an hour later: a new job, named for when it was asked for
    cloud.dev.seed_monitor_run(MONITOR, "credit-drift-run-2", breached_signal="data-drift")
    Controller(Project(project, "dev")).tick()
    job = [j for j in submitted_jobs(cloud.dev) if j != job][0]
    finish(cloud.dev, job)
    session = Project(project, "dev")
    with session.lock("a person's apply"):
        Controller(Project(project, "dev")).tick()
    assert actions(project, "dev")[-1] == "retrain_started"
    Controller(Project(project, "dev")).tick()
    assert actions(project, "dev")[-1] == "retrain_finished"


def test_retraining_a_promoted_environment_is_refused_naming_where_to_retrain(project: Path, cloud: Cloud):
    from specops.errors import SpecopsError

    with pytest.raises(SpecopsError, match=r"prod trains nothing.*specops retrain credit-risk-training --env dev"):
        Controller(Project(project, "prod")).retrain("credit-risk-training", "manual")


def test_json_is_for_one_pass(project: Path):
    result = CliRunner().invoke(main, ["controller", "--json", "--env", "dev", "--root", str(project)])
    assert result.exit_code == 2 and "--json reports one pass: use it with --once" in result.output
