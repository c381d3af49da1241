"""`make demo`: the whole specops lifecycle on the example project, in four acts, on a scratch copy.

The scratch copy (build/demo, a git + DVC repository of its own) keeps your
checkout as it is: the demo commits there, trains there and serves from there.

1. Declare and apply. validate, render --check, plan, apply: data generated and
   validated, a sweep trained, evaluated, gated and registered (v1, champion);
   the endpoint deployed (blue serves the champion). The plan is then empty.
2. A challenger, rolled out. Under production-like traffic (credit_risk.traffic,
   labels reported back), a retraining registers a challenger and the
   controller rolls it out on green as a canary: weight, pause, analysis, and
   promotion to champion.
3. A bad model, rolled back. A model fit on inverted labels is registered as
   challenger (credit_risk.bad_model). apply starts its canary; analysis on the
   labelled feedback fails; all traffic goes back to stable at once; an
   incident is written; apply fails, and the plan keeps saying so until the
   challenger alias is moved off the bad version.
4. Drift closes the loop. A downturn: incomes fall by a fifth and debt weighs
   more on who defaults; the monitor alerts on income (the changed relationship
   shows only in the labels); retraining starts by itself with
   trigger_reason=drift, on data/credit.csv plus the endpoint's labelled answers
   of the last week (the Pipeline's spec.feedback); the new model passes the gate
   and goes out through the rollout, and the accuracy of both models on the same
   labelled live traffic is printed; `specops slo status` shows the error budgets
   left and `specops kpi` the drift reaction time and the lead time.

The endpoint answers throughout; the traffic client's count of failed requests
is printed at the end of every act. `python -m credit_risk.demo --keep` leaves
the server running afterwards.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from credit_risk.traffic import Traffic

REPO = Path(__file__).resolve().parents[2]
ENDPOINT, MONITOR, PIPELINE, MODEL = "credit-scoring", "credit-drift", "credit-risk-training", "credit-risk"
RATE = 200  # requests per second from the traffic client: enough samples for every analysis step
console = Console(highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The specops demo (see the module docstring).")
    parser.add_argument("--dir", type=Path, default=REPO / "build" / "demo", help="scratch project (replaced)")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint's server running at the end")
    args = parser.parse_args(argv)
    root = scratch_copy(args.dir)
    try:
        act_one(root)
        act_two(root)
        act_three(root)
        act_four(root)
    finally:
        if not args.keep:
            specops(root, "endpoint", "stop", ENDPOINT, check=False)
    console.print(Rule("done"))
    console.print(f"The scratch project is {root}; `cd` there and run `specops status`, `specops rollout status {ENDPOINT}`, "
                  f"`specops monitor report`, or open .specops/incidents/.")
    return 0


# --- the acts ------------------------------------------------------------------------------------

def act_one(root: Path) -> None:
    header("1. Declare and apply: train, gate, register, deploy")
    for command in (["validate"], ["render", "--check"], ["plan"], ["apply"], ["status"], ["lineage", f"{MODEL}@champion"]):
        specops(root, *command)
    specops(root, "plan", "--detailed-exitcode")  # exit 0: nothing left to do


def act_two(root: Path) -> None:
    header("2. A challenger, rolled out as a canary and promoted")
    with running(Traffic(root, ENDPOINT, rate=RATE)):
        specops(root, "retrain", PIPELINE, "--reason", "manual")
    specops(root, "rollout", "status", ENDPOINT)
    expect_rollout(root, "Healthy")


def act_three(root: Path) -> None:
    header("3. A deliberately bad model: automatic rollback")
    from credit_risk.bad_model import register_bad_challenger

    version = register_bad_challenger(root)
    console.print(f"registered {MODEL} v{version}, fit on inverted labels, as challenger")
    specops(root, "plan")
    with running(Traffic(root, ENDPOINT, rate=RATE)):
        failed = specops(root, "apply", check=False)
    if failed.returncode == 0:
        raise SystemExit("the bad challenger was promoted: the demo expected an automatic rollback")
    specops(root, "rollout", "status", ENDPOINT)
    expect_rollout(root, "Degraded")
    specops(root, "plan", check=False)
    console.print("The team rejects the bad version: challenger goes back to the champion's version.")
    reset_challenger(root)
    specops(root, "apply")
    specops(root, "plan", "--detailed-exitcode")


def act_four(root: Path) -> None:
    header("4. Drift: the monitor alerts, retraining starts by itself, the rollout ships it")
    window = 65  # the local monitor window is one minute (specs/project.yaml: monitor_window)
    console.print(f"A downturn: incomes fall by a fifth, and debt now weighs twice as much on who defaults. "
                  f"Sending its traffic, labels fed back, for {window} s ...")
    with running(Traffic(root, ENDPOINT, drift="recession", rate=RATE)):
        time.sleep(window)
        specops(root, "monitor", "run", MONITOR)
        specops(root, "controller", "--once")  # retrains on data/credit.csv plus the week's labelled answers
    specops(root, "rollout", "status", ENDPOINT)
    expect_rollout(root, "Healthy")
    compare_on_live_traffic(root)
    specops(root, "scoreboard")
    specops(root, "slo", "status", "--format", "markdown")
    specops(root, "kpi")


# --- helpers -------------------------------------------------------------------------------------

class running:
    """Traffic in the background for the length of a `with` block; prints what it saw."""

    def __init__(self, traffic: Traffic):
        self.traffic = traffic

    def __enter__(self) -> Traffic:
        return self.traffic.start()

    def __exit__(self, *exc) -> None:
        console.print(f"[bold]traffic:[/bold] {self.traffic.stop().summary()}")


def expect_rollout(root: Path, status: str) -> None:
    """Stop the demo, saying why, when a rollout did not end as the act expects (a busy machine can starve analysis)."""
    from specops.project import Project

    record = Project(root).state.rollout(ENDPOINT)
    if record is None or record.status != status:
        found = "no rollout" if record is None else f"{record.status}: {record.message}"
        raise SystemExit(f"expected the rollout to end {status}, found {found}")


def compare_on_live_traffic(root: Path) -> None:
    """The retrained model against the one it replaced, on the same live answers whose labels came back."""
    from specops.project import Project

    record = Project(root).state.rollout(ENDPOINT)
    analysis = record.analyses[-1] if record is not None and record.analyses else None
    if analysis is None or "accuracy" not in analysis["canary"] or "accuracy" not in analysis["stable"]:
        raise SystemExit("the rollout recorded no labelled analysis to compare the models on")
    old, new = analysis["stable"], analysis["canary"]
    console.print(f"[bold]on the downturn's labelled traffic[/bold] (the rollout's last analysis): the model it replaced "
                  f"{old['accuracy']:.3f} accuracy ({old['labelled']:.0f} labels), the model retrained with production "
                  f"rows {new['accuracy']:.3f} ({new['labelled']:.0f} labels)")


def header(title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}"))


def specops(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    console.print(f"[bold cyan]$ specops {' '.join(args)}[/bold cyan]")
    result = subprocess.run([str(Path(sys.executable).parent / "specops"), *args], cwd=root)
    if check and result.returncode not in (0,):
        raise SystemExit(f"`specops {' '.join(args)}` exited {result.returncode}")
    return result


def scratch_copy(dest: Path) -> Path:
    """The repository's tracked files in a fresh git + DVC repository (the demo commits and trains there)."""
    from specops.core.paths import ProjectPaths
    from specops.serving.daemon import stop

    if dest.exists():
        stop(ProjectPaths(dest), ENDPOINT)  # a server left by an earlier `--keep` run
        shutil.rmtree(dest)
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    quiet = {"stdout": subprocess.DEVNULL, "check": True, "cwd": dest}
    subprocess.run(["git", "init", "-q"], **quiet)
    if not (dest / ".dvc").is_dir():  # a checkout carries the repository's .dvc/config
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], **quiet)
    subprocess.run(["git", "add", "-A"], **quiet)
    subprocess.run(["git", "-c", "user.name=specops demo", "-c", "user.email=demo@example.com",
                    "commit", "-qm", "The example project, as merged"], **quiet)
    console.print(f"scratch project: {dest}")
    return dest


def reset_challenger(root: Path) -> None:
    from specops.project import Project

    client = Project(root).registry
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    client.set_registered_model_alias(MODEL, "challenger", champion)


if __name__ == "__main__":
    sys.exit(main())
