"""`specops init`: generated projects are complete, markup-free, valid, and run their own tests and demo.

One project is generated and taken through its own `make demo` and `make test`
with this repository's environment (VENV=...), so nothing is installed here.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from specops.cli import main as cli
from specops.init import TEMPLATE, InitError, init_project, source, update_project
from tests.tasks.conftest import run_stages
from tests.conftest import REPO, run

pytestmark = pytest.mark.xdist_group("init")
VENV = Path(sys.executable).parent.parent
CI_FILES = {
    "github": {".github/workflows/pr.yml", ".github/workflows/main.yml", ".github/workflows/retrain.yml",
               ".github/workflows/controller.yml"},
    "azure-devops": {"azure-pipelines.yml", "azure-pipelines-controller.yml"},
}
CI_FILES["both"] = CI_FILES["github"] | CI_FILES["azure-devops"]


def tracked(project: Path) -> set[str]:
    return set(run(["git", "ls-files"], project).stdout.split())


def make(target: str, project: Path) -> subprocess.CompletedProcess:
    # --no-print-directory: under CI this suite itself runs inside `make test`, and a nested make
    # would otherwise end its output with "Leaving directory" instead of pytest's summary.
    return run(["make", "--no-print-directory", target, f"VENV={VENV}"], project, check=False, timeout=600)


@pytest.fixture(scope="session")
def specops_pin(tmp_path_factory) -> source.Pin:
    """The pin `specops init` gives projects when this checkout runs it: a wheel built once for the session."""
    return source.running(tmp_path_factory.mktemp("specops-wheel"))


@pytest.fixture(autouse=True)
def wheel_built_once(specops_pin, monkeypatch):
    """init_project pins the running specops; here that is an editable checkout, built into a wheel
    once (test_the_running_checkout_is_pinned_as_a_wheel) instead of in every test (~15 s each)."""
    monkeypatch.setattr(source, "running", lambda workdir, index_hashes=None: specops_pin)


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A project with example data, a sensitive attribute and both CI providers, after its own `make demo`.

    No Endpoint: locally, apply would start its server (a long-lived process on a fixed port).
    It runs in this repository's environment (VENV=), so it never installs its pin: --specops-source names
    one without a wheel to build (a session fixture starts before the autouse patch). The default pin is
    test_the_running_checkout_is_pinned_as_a_wheel's; tests/acceptance/test_release.py installs it."""
    project = init_project(tmp_path_factory.mktemp("init") / "churn-model",
                           {"target": "churned", "sensitive": "group", "ci_provider": "both", "specops_source": "specops"})
    return project, make("demo", project)


def test_the_running_checkout_is_pinned_as_a_wheel(specops_pin, tmp_path):
    """No flag: the editable checkout running the tests becomes a wheel in wheels/, pinned by hash and committed."""
    assert specops_pin.origin == f"a wheel built from the editable checkout {REPO}"
    project = init_project(tmp_path / "pinned", {"target": "y"})
    (wheel,) = (project / "wheels").glob("specops-*.whl")
    assert wheel.name == specops_pin.wheel.name
    head = run(["git", "rev-parse", "--short=7", "HEAD"], REPO).stdout.strip()
    assert f"+g{head}" in wheel.name or "+" not in wheel.name  # this checkout's version, now (not the install's)
    line = (project / "requirements-specops.txt").read_text().splitlines()[-1]
    assert line == f"./wheels/{wheel.name} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
    assert f"wheels/{wheel.name}" in tracked(project)
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["specops_source"] == line


# --- (1) flags -> exactly the chosen files -----------------------------------------

@pytest.mark.parametrize("ci, endpoint", [("github", True), ("azure-devops", False)])
def test_each_ci_provider_generates_exactly_its_files(tmp_path, ci, endpoint):
    project = init_project(tmp_path / "p", {"project_name": "fraud", "target": "is_fraud", "ci_provider": ci,
                                            "endpoint": endpoint, "endpoint_port": 5917})
    files = tracked(project)
    present = {f for f in files if f.startswith((".github/", "azure-pipelines"))}
    assert present == CI_FILES[ci]
    endpoints = {f for f in files if f.startswith("specs/endpoints/")}
    assert endpoints == ({"specs/endpoints/fraud.yaml"} if endpoint else set())
    if endpoint:
        spec = yaml.safe_load((project / "specs/endpoints/fraud.yaml").read_text())["spec"]
        assert spec["deployments"][0]["model"] == "fraud@champion" and spec["server"]["port"] == 5917
    assert {"specs/project.yaml", "specs/data/fraud.yaml", "specs/gates/promotion.yaml", "specs/pipelines/training.yaml",
            "params.yaml", "dvc.yaml", "Makefile", ".ci/run", "README.md", ".gitignore", "requirements.lock",
            "requirements-specops.txt", "tests/test_project.py", "src/fraud/generate.py", ".copier-answers.yml",
            ".dvc/config", "schemas/Pipeline.json", "azure.env.example"} <= files
    assert run(["git", "status", "--porcelain"], project).stdout == ""
    assert len(run(["git", "log", "--oneline"], project).stdout.splitlines()) == 1
    assert (project / ".ci" / "run").stat().st_mode & 0o111
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["ci_provider"] == ci and answers["target"] == "is_fraud"
    assert answers["specops_source"] in (project / "requirements-specops.txt").read_text()


def test_the_template_lock_is_this_repository_lock():
    assert (TEMPLATE / "project" / "requirements.lock").read_bytes() == (REPO / "requirements.lock").read_bytes(), \
        "copy requirements.lock into src/specops/init/template/project/ after `make lock`"


def adapt_ci(text: str) -> str:
    """This repository's CI file as the template ships it: the generated project has no pyproject.toml
    (specops comes from requirements-specops.txt) and no docs/ (its README says how to connect Azure)."""
    text = text.replace("hashFiles('requirements.lock', 'pyproject.toml')",
                        "hashFiles('requirements.lock', 'requirements-specops.txt')")
    text = text.replace("requirements.lock | pyproject.toml", "requirements.lock | requirements-specops.txt")
    text = text.replace('# Supply chain and code security (docs/ci-cd.md, "Security checks").', "# Supply chain and code security.")
    text = text.replace("the same stages as .github/workflows/ (see docs/ci-cd.md)",
                        "the same stages as the GitHub workflows specops generates (see README.md, Connecting Azure)")
    return text.replace("docs/ci-cd.md", "README.md, Connecting Azure")


def test_the_template_ci_files_follow_this_repository_ci_files():
    """The generated CI is this repository's, adapted: a change to one without the other fails here."""
    project = TEMPLATE / "project"
    pairs = [(REPO / ".github" / "workflows" / name,
              project / "[% if ci_provider in ['github', 'both'] %].github[% endif %]" / "workflows" / name)
             for name in ("pr.yml", "main.yml", "retrain.yml", "controller.yml")]
    pairs += [(REPO / name, project / f"[% if ci_provider in ['azure-devops', 'both'] %]{name}[% endif %]")
              for name in ("azure-pipelines.yml", "azure-pipelines-controller.yml")]
    for original, shipped in pairs:
        assert shipped.read_text() == adapt_ci(original.read_text()), \
            f"{shipped.name} in the template differs from {original.relative_to(REPO)} adapted by adapt_ci(): re-copy it"


def test_a_tampered_or_missing_wheel_fails_the_install_with_pips_error(specops_pin, tmp_path):
    """What `make venv` runs, as a dry run: the pinned wheel is checked by hash before anything installs."""
    project = init_project(tmp_path / "tamper", {"target": "y"})
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "-r", "requirements-specops.txt"]
    assert "Would install specops-" in run(pip, project).stdout
    wheel = project / "wheels" / specops_pin.wheel.name
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    result = run(pip, project, check=False)
    assert result.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr, result.stderr[-2000:]
    wheel.unlink()
    result = run(pip, project, check=False)
    assert result.returncode != 0 and f"No such file or directory: '{wheel}'" in result.stderr, result.stderr[-2000:]


# --- (2) no template markup ---------------------------------------------------------

CI_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")           # GitHub Actions / Azure Pipelines expressions
SPEC_OVERLAY = re.compile(r"\{\{ (values|env)\.\w+ \}\}")  # specops' own environment overlays in specs/


def test_no_template_markup_is_left(demo):
    project, _ = demo
    checked = 0
    for path in project.rglob("*"):
        relative = path.relative_to(project)
        # Not template output: git/DVC/MLflow internals, run artifacts, the JSON Schemas specops writes
        # (whose descriptions quote the overlay syntax) and the pinned specops wheel.
        if not path.is_file() or relative.parts[0] in (".git", ".dvc", ".specops", "mlruns", "artifacts", "schemas", "wheels"):
            continue
        text = path.read_text(errors="replace")
        text = CI_EXPRESSION.sub("", text)
        if relative.parts[0] == "specs":
            text = SPEC_OVERLAY.sub("", text)
        for marker in ("{{", "}}", "{%", "%}", "{#", "[[", "]]", "[%", "%]", "[#", "#]"):
            assert marker not in text, f"{relative}: template markup {marker!r} left: ...{text[text.index(marker) - 40:][:100]}"
        if path.suffix in (".yml", ".yaml"):
            list(yaml.safe_load_all(text))
        checked += 1
    assert checked > 20
    assert "${{ vars.AZURE_CLIENT_ID }}" in (project / ".github/workflows/main.yml").read_text()
    assert "${{ variables.devServiceConnection }}" in (project / "azure-pipelines.yml").read_text()


def test_generated_ci_files_match_their_schemas(demo):
    """check-jsonschema's vendored (offline) schemas, as tests/infra does for this repository's own files."""
    project, _ = demo
    assert {f for f in tracked(project) if f.startswith((".github/", "azure-pipelines"))} == CI_FILES["both"]
    exe = str(VENV / "bin" / "check-jsonschema")
    workflows = sorted(str(p) for p in (project / ".github" / "workflows").glob("*.yml"))
    result = run([exe, "--builtin-schema", "vendor.github-workflows", *workflows], project, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([exe, "--builtin-schema", "vendor.azure-pipelines", "--regex-variant", "nonunicode",
                  str(project / "azure-pipelines.yml"), str(project / "azure-pipelines-controller.yml")], project, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# --- (3) its own validate, render --check and make test; (4) its own make demo -----

def test_generated_project_runs_its_own_demo(demo):
    project, result = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No changes. local matches the specs." in result.stdout  # the final `plan --detailed-exitcode`
    assert "churn-model@champion" in result.stdout or "# Model card" in result.stdout
    assert (project / "artifacts" / "churn-model-training" / "gate.json").is_file()


def test_generated_project_validates_and_passes_its_own_tests(demo):
    project, _ = demo
    for env in ("local", "dev", "prod"):
        assert run([str(VENV / "bin" / "specops"), "validate", "--env", env], project).returncode == 0
    assert "up to date" in run([str(VENV / "bin" / "specops"), "render", "--check"], project).stdout
    result = make("test", project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary and "failed" not in summary, summary


def test_an_environment_without_specops_is_refused(demo, tmp_path):
    project, _ = demo
    result = run(["make", "test", f"VENV={tmp_path}"], project, check=False)
    assert result.returncode != 0 and "has no specops" in result.stderr


# --- importing an existing CSV --------------------------------------------------------

CSV = """customer_id,age,balance,plan,active,score,region,outcome
c001,34,1200.50,gold,True,7,,yes
c002,51,80.00,basic,False,,north,no
c003,29,-15.25,basic,True,3,south,no
c004,62,5300.00,silver,False,9,north,yes
c005,45,410.75,gold,True,5,south,no
"""


def test_an_existing_csv_becomes_the_dataset_contract(tmp_path):
    source = tmp_path / "My Customers.csv"
    rows = CSV.splitlines()
    source.write_text("\n".join([rows[0], *[r.replace("c00", f"c{i}0") for i in range(6) for r in rows[1:]]]) + "\n")
    project = init_project(tmp_path / "retention", {"target": "outcome", "ci_provider": "github"}, data=str(source))
    dataset = yaml.safe_load_all((project / "specs/data/retention.yaml").read_text())
    dataset, features = list(dataset)
    columns = dataset["spec"]["columns"]
    assert dataset["spec"]["path"] == "data/My-Customers.csv"
    assert columns["age"] == {"type": "int", "min": 29, "max": 62}
    assert columns["balance"] == {"type": "float", "min": -16, "max": 5300}
    assert columns["plan"] == {"type": "str", "allowed": ["basic", "gold", "silver"]}
    assert columns["active"] == {"type": "bool"}
    assert columns["score"] == {"type": "int", "nullable": True, "min": 3, "max": 9}  # ints with gaps read as floats
    assert columns["region"] == {"type": "str", "nullable": True, "allowed": ["north", "south"]}
    assert columns["outcome"] == {"type": "str", "allowed": ["no", "yes"]}
    assert "allowed" not in columns["customer_id"]  # 30 distinct ids: not a category
    assert [f["name"] for f in features["spec"]["features"]] == ["age", "balance", "plan", "active", "score", "region"]
    assert "sensitive" not in dataset["spec"]
    files = tracked(project)
    assert "data/My-Customers.csv.dvc" in files and "data/My-Customers.csv" not in files  # DVC tracks the data
    assert not any(f.startswith("src/") for f in files)  # no example generator
    pipeline = yaml.safe_load((project / "specs/pipelines/training.yaml").read_text())
    assert "steps" not in pipeline["spec"]
    assert run([str(VENV / "bin" / "specops"), "render", "--check"], project).returncode == 0
    # The inferred contract holds on the data it came from, and the features compute (nulls included).
    run_stages(project, "validate", "features")
    assert (project / "artifacts" / "retention-training" / "features.parquet").is_file()


def mixed_frame(rows: int, target: str):
    """Mixed types, missing values, an id, dates and names with spaces, around a target built by `target`."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    frame = pd.DataFrame({
        "Customer ID": [f"cust-{i:04d}" for i in range(rows)],
        "signup date": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
        "monthly spend": rng.gamma(2.0, 50.0, rows).round(2),
        "tenure years": rng.integers(0, 15, rows),
        "plan type": rng.choice(["basic", "plus", "premium"], rows),
        "has app": rng.choice([True, False], rows),
    })
    frame.loc[rng.random(rows) < 0.1, "monthly spend"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "plan type"] = np.nan
    frame[target] = TARGETS[target](frame, rng)
    return frame


TARGETS = {
    "lifetime value": lambda f, rng: (f["tenure years"] * 40 + f["monthly spend"].fillna(100) * 3
                                      + rng.normal(0, 20, len(f))).round(2),
    "segment": lambda f, rng: np.where(f["tenure years"] > 9, "loyal", np.where(f["tenure years"] > 4, "settled", "new")),
}


@pytest.mark.parametrize("target, task, metric", [("lifetime value", "regression", "rmse"),
                                                  ("segment", "multiclass", "f1_macro")])
def test_a_regression_or_multiclass_csv_with_ids_dates_gaps_and_spaces_validates_and_trains(tmp_path, target, task, metric):
    source = tmp_path / "customers.csv"
    mixed_frame(300, target).to_csv(source, index=False)
    project = init_project(tmp_path / "ltv", {"target": target, "ci_provider": "github"}, data=str(source))
    dataset, features = yaml.safe_load_all((project / "specs/data/ltv.yaml").read_text())
    columns = dataset["spec"]["columns"]
    assert columns["Customer ID"]["role"] == "id"
    assert columns["signup date"]["role"] == "date" and "allowed" not in columns["signup date"]
    assert columns["monthly spend"]["nullable"] is True and columns["plan type"]["nullable"] is True
    assert [f["name"] for f in features["spec"]["features"]] == ["monthly spend", "tenure years", "plan type", "has app"]
    pipeline = yaml.safe_load((project / "specs/pipelines/training.yaml").read_text())["spec"]
    assert (pipeline["task"], pipeline["selection"]["metric"]) == (task, metric)
    assert ("allowed" in columns[target]) == (task == "multiclass")
    run_stages(project, "validate", "features", "train", "evaluate", "gate")  # in this process: no interpreter per stage
    gate = yaml.safe_load((project / "artifacts/ltv-training/gate.json").read_text())
    assert gate["passed"] and gate["selection"]["metric"] == metric


# --- (5) user mistakes -----------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(cli, ["init", *args], catch_exceptions=False)


@pytest.mark.parametrize("args, message", [
    (["--target", "y", "--name", "Bad_Name"], "--name 'Bad_Name': must be"),
    (["--name", "ok-name"], "missing answers (no terminal to ask on): --target"),
    (["--target", "y", "--ci", "gitlab"], "--ci 'gitlab': must be one of github, azure-devops, both"),
    (["--target", "y", "--dataset-path", "../outside.csv"], "--dataset-path: must be a relative path inside the project"),
    (["--target", "y", "--rows", "10"], "--rows: must be at least 500"),
    (["--target", "age"], "the example data generator has a column named 'age'"),
    (["--target", "y", "--data", "/nonexistent/data.csv"], "--data /nonexistent/data.csv: no such file"),
])
def test_bad_flags_fail_clearly_and_write_nothing(tmp_path, args, message):
    dest = tmp_path / "new-project"
    result = invoke(str(dest), *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not dest.exists()


def test_a_folder_name_that_is_no_project_name_says_why(tmp_path):
    """The folder's name is the default --name: when it cannot be one, say so, and offer one that can."""
    dest = tmp_path / "My_Project 2"
    result = invoke(str(dest), "--target", "y", "--no-interactive")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the folder name 'My_Project 2' is not a valid project name" in result.output
    assert "pass --name, e.g. --name my-project-2" in result.output
    assert not dest.exists()


def test_bad_data_fails_clearly(tmp_path):
    names = tmp_path / "names.csv"  # text with a value per row: neither classes nor numbers
    names.write_text("x,label\n" + "".join(f"{i},name{i}\n" for i in range(30)))
    result = invoke(str(tmp_path / "p1"), "--data", str(names), "--target", "label")
    assert result.exit_code == 1 and "--target 'label' is text with 30 distinct values (name0, name1," in result.output
    assert "text cannot be a regression's target" in result.output
    result = invoke(str(tmp_path / "p2"), "--data", str(names), "--target", "missing")
    assert result.exit_code == 1 and "--target 'missing' is not a column of names.csv (columns: x, label)" in result.output
    one = tmp_path / "one.csv"
    one.write_text("x,label\n1,a\n2,a\n")
    result = invoke(str(tmp_path / "p3"), "--data", str(one), "--target", "label")
    assert result.exit_code == 1 and "--target 'label' has one value ('a'): there is nothing to learn" in result.output
    assert not any((tmp_path / p).exists() for p in ("p1", "p2", "p3"))


def test_a_failure_after_rendering_leaves_nothing_behind(tmp_path, monkeypatch):
    from specops.init import bootstrap

    def broken_dvc(cwd, *args):
        raise InitError(f"dvc {' '.join(args)} failed: simulated")

    monkeypatch.setattr(bootstrap, "_dvc", broken_dvc)
    dest = tmp_path / "half"
    with pytest.raises(InitError, match="simulated"):
        init_project(dest, {"target": "y"})
    assert not dest.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InitError, match="simulated"):
        init_project(empty, {"target": "y"})
    assert list(empty.iterdir()) == []


def test_a_non_empty_folder_needs_force(tmp_path):
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    result = invoke(str(dest), "--target", "y")
    assert result.exit_code == 1 and "is not empty" in result.output and "--force" in result.output
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    # Through the real entry point: exit 1, one line, no traceback.
    process = subprocess.run([str(VENV / "bin" / "specops"), "init", str(dest), "--target", "y"],
                             capture_output=True, text=True)
    assert process.returncode == 1 and process.stderr.startswith("error:") and "Traceback" not in process.stderr
    result = invoke(str(dest), "--target", "y", "--force", "--no-endpoint", "--ci", "azure-devops")
    assert result.exit_code == 0, result.output
    assert (dest / "notes.txt").read_text() == "mine\n" and (dest / "azure-pipelines.yml").is_file()
    assert run(["git", "log", "--oneline"], dest).stdout.count("\n") == 1


def test_force_into_a_git_repository_keeps_its_history(tmp_path):
    dest = tmp_path / "repo"
    dest.mkdir()
    run(["git", "init", "-q"], dest)
    (dest / "notes.txt").write_text("mine\n")
    run(["git", "add", "notes.txt"], dest)
    run(["git", "commit", "-qm", "ours"], dest)
    init_project(dest, {"target": "y"}, force=True)
    assert run(["git", "log", "--format=%s"], dest).stdout.split("\n")[0] == "ours"
    assert "?? specs/project.yaml" in run(["git", "status", "--porcelain", "-uall"], dest).stdout  # left for review
    assert (dest / ".dvc" / "config").is_file()


# --- (6) the update path ------------------------------------------------------------------

def test_template_updates_arrive_and_project_edits_survive(tmp_path):
    repo = tmp_path / "template-repo"
    shutil.copytree(TEMPLATE, repo, ignore=shutil.ignore_patterns("__pycache__"))
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "template v1"], repo)
    run(["git", "tag", "v1"], repo)

    project = init_project(tmp_path / "scoring", {"target": "y", "ci_provider": "github"}, template=str(repo), vcs_ref="v1")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1" and answers["_src_path"] == str(repo)
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nOur team's own notes.\n")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: [4, 8]", "max_depth: [4, 6, 8]"))
    run(["git", "commit", "-qam", "our edits"], project)

    makefile = repo / "project" / "Makefile.jinja"
    makefile.write_text(makefile.read_text() + "\n# Added in template v2.\nlint: $(READY)\n\t$(BIN)/specops validate\n")
    (repo / "project" / "CONTRIBUTING.md.jinja").write_text("# Contributing to [[ project_name ]]\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "template v2"], repo)
    run(["git", "tag", "v2"], repo)

    (project / "scratch.txt").write_text("not committed\n")
    with pytest.raises(InitError, match="uncommitted changes: commit or stash them first"):
        update_project(project)
    (project / "scratch.txt").unlink()

    result = invoke(str(project), "--update")
    assert result.exit_code == 0, result.output
    assert "# Added in template v2." in (project / "Makefile").read_text()
    assert (project / "CONTRIBUTING.md").read_text() == "# Contributing to scoring\n"
    assert "Our team's own notes." in readme.read_text()
    assert "max_depth: [4, 6, 8]" in params.read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v2"


def test_update_moves_the_specops_pin_even_without_a_versioned_template(tmp_path, specops_pin):
    project = init_project(tmp_path / "plain", {"target": "y", "endpoint": False, "specops_source": "specops==0.0.1"})
    assert (project / "requirements-specops.txt").read_text().splitlines()[-1] == "specops==0.0.1"
    assert not (project / "wheels").exists()
    result = invoke(str(project), "--update")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "not a git repository, so only the specops pin is updated" in said
    assert f"specops pin: specops==0.0.1 -> {specops_pin.requirement}" in said
    assert (project / "requirements-specops.txt").read_text().splitlines()[-1] == specops_pin.requirement
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["specops_source"] == specops_pin.requirement
    assert [p.name for p in (project / "wheels").iterdir()] == [specops_pin.wheel.name]
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "new pin"], project)
    result = invoke(str(project), "--update")
    assert "specops pin unchanged" in " ".join(result.output.split()), result.output
    assert run(["git", "status", "--porcelain"], project).stdout == ""
    result = invoke(str(project), "--update", "--target", "y")
    assert result.exit_code != 0 and "--update takes only --vcs-ref and --template" in result.output
