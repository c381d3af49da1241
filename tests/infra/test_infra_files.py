"""Static checks of the CI/CD definitions and the infrastructure code.

No cloud and no network: the YAML files are parsed with ruamel.yaml and the
properties that keep deployments safe are asserted (OIDC rather than secrets,
no ignored failures, prod behind dev and an approval, the PR plan comment, only
real specops subcommands). Bicep and Terraform are checked by text: the
resources and the security settings the template promises are declared.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
AZURE_PIPELINES = REPO / "azure-pipelines.yml"
BICEP = REPO / "infra" / "bicep"
TERRAFORM = REPO / "infra" / "terraform"

ENVIRONMENTS = {"local", "dev", "prod"}
PLAN_MARKER = "<!-- specops-plan -->"

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
CI_FILES = WORKFLOW_FILES + [AZURE_PIPELINES]


def load(path: Path):
    return YAML(typ="safe", pure=True).load(path.read_text())


def walk(node, path=()):
    """Every (path, key, value) of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, path + (i,))


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def workflow(name: str) -> dict:
    return load(WORKFLOWS / name)


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def uses(step: dict, action: str) -> bool:
    return step.get("uses", "").split("@")[0] == action


def needs(job: dict) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def ancestors(jobs: dict, name: str) -> set[str]:
    seen: set[str] = set()
    todo = needs(jobs[name])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(needs(jobs[current]))
    return seen


def environment_name(job: dict) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def jobs_running(jobs: dict, pattern: str) -> list[str]:
    return [name for name, job in jobs.items() if re.search(pattern, runs(job))]


def applies(script: str, env: str) -> bool:
    """`specops apply --env ENV`, or a saved plan of ENV applied as it was reviewed (`plan -out F` then `apply F`)."""
    if re.search(rf"specops apply --env {env}\b", script):
        return True
    return any(re.search(rf"specops apply {re.escape(saved)}", script)
               for saved in re.findall(rf"specops plan --env {env}\b[^\n]*?-out (\S+)", script))


def jobs_applying(jobs: dict, env: str) -> list[str]:
    return [name for name, job in jobs.items() if applies(runs(job), env)]


# Shell text: every `specops <subcommand>` invocation (also .venv/bin/specops).
SPECOPS_CALL = re.compile(r"(?:^|[\s;&|(/`])specops[ \t]+([A-Za-z][\w-]*)([^\n;&|]*)", re.MULTILINE)


def shell_scripts():
    """(file, script) for every shell script in the CI definitions."""
    for path in WORKFLOW_FILES:
        for _, key, value in walk(load(path)):
            if key == "run" and isinstance(value, str):
                yield path.name, value
    for _, key, value in walk(load(AZURE_PIPELINES)):
        if key in ("script", "bash", "inlineScript") and isinstance(value, str):
            yield AZURE_PIPELINES.name, value


# ---------------------------------------------------------------- all CI files

def test_the_ci_files_exist():
    names = {p.name for p in WORKFLOW_FILES}
    assert {"pr.yml", "main.yml", "retrain.yml", "controller.yml"} <= names
    assert AZURE_PIPELINES.exists()


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_parses_as_a_mapping(path):
    assert isinstance(load(path), dict)


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_no_step_may_fail_silently(path):
    for where, key, value in walk(load(path)):
        if key in ("continue-on-error", "continueOnError"):
            assert value is False, f"{path.name}: {key}: {value!r} at {'/'.join(map(str, where))}"


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_no_secret_is_referenced(path):
    # Azure access is OIDC / workload identity federation; nothing needs a stored secret.
    for text in strings(load(path)):
        assert not re.search(r"\bsecrets\.", text), f"{path.name} references a secret: {text[:80]!r}"
        assert not re.search(r"\$\(\s*(client|servicePrincipal)Secret", text, re.I), path.name


def test_specops_calls_use_real_subcommands_and_environments():
    from specops.cli import main

    calls = 0
    for name, script in shell_scripts():
        for match in SPECOPS_CALL.finditer(script):
            calls += 1
            sub, rest = match.group(1), match.group(2)
            assert sub in main.commands, f"{name}: `specops {sub}` is not a specops subcommand"
            for env in re.findall(r"(?:--env|-e)[ =]+(\S+)", rest):
                assert env in ENVIRONMENTS, f"{name}: `specops {sub} --env {env}`: unknown environment"
    assert calls >= 10, "the CI files are expected to drive everything through specops"


# ---------------------------------------------------------------- GitHub workflows

@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_shape(path):
    doc = load(path)
    assert "on" in doc, f"{path.name}: no triggers (is `on` quoted?)"
    assert doc.get("jobs"), path.name
    assert "permissions" in doc, f"{path.name}: set permissions explicitly; the default token is too broad"
    for name, job in doc["jobs"].items():
        assert "runs-on" in job, f"{path.name}:{name}"
        assert "timeout-minutes" in job, f"{path.name}:{name}: no timeout"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_azure_login_is_oidc_from_variables(path):
    doc = load(path)
    logins = 0
    for name, job in doc["jobs"].items():
        for step in steps(job):
            if not uses(step, "azure/login"):
                continue
            logins += 1
            inputs = step.get("with", {})
            assert "creds" not in inputs and "client-secret" not in inputs, f"{path.name}:{name}"
            for key in ("client-id", "tenant-id", "subscription-id"):
                assert re.fullmatch(r"\$\{\{\s*vars\.[A-Z_]+(\s*\|\|\s*vars\.[A-Z_]+)*\s*\}\}", str(inputs.get(key, ""))), \
                    f"{path.name}:{name}: azure/login {key} must come from a repository/environment variable"
            permissions = job.get("permissions", doc.get("permissions", {}))
            assert permissions.get("id-token") == "write", f"{path.name}:{name}: azure/login needs id-token: write"
    if re.search(r"--env[ =](dev|prod)", "\n".join(runs(job) for job in doc["jobs"].values())):
        assert logins, f"{path.name}: a workflow that talks to Azure signs in through azure/login"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_cloud_commands_come_after_azure_login(path):
    for name, job in load(path)["jobs"].items():
        logged_in = False
        for step in steps(job):
            logged_in = logged_in or uses(step, "azure/login")
            run = step.get("run", "")
            if re.search(r"specops[ \t]+(apply|plan)[^\n]*(--env[ =](dev|prod)|\.plan\b)", run):
                assert logged_in, f"{path.name}:{name}: {step.get('name', run)!r} runs before azure/login"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_venv_cache_is_keyed_on_the_lock(path):
    for name, job in load(path)["jobs"].items():
        if "make venv" not in runs(job):
            continue
        caches = [s for s in steps(job) if uses(s, "actions/cache")]
        if "tags" in (load(path)["on"].get("push") or {}):
            # A release installs from nothing: a poisoned cache must never reach a published artifact.
            assert not caches, f"{path.name}:{name}: a release job restores a cache"
            continue
        assert caches, f"{path.name}:{name}: make venv without a .venv cache"
        assert caches[0]["with"]["path"] == ".venv"
        assert "requirements.lock" in caches[0]["with"]["key"], f"{path.name}:{name}"
        python = [s for s in steps(job) if uses(s, "actions/setup-python")]
        assert python and str(python[0]["with"]["python-version"]) == "3.11", f"{path.name}:{name}"


def test_pr_workflow():
    doc = workflow("pr.yml")
    assert "pull_request" in doc["on"]
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write", "id-token": "write"}
    assert "github.event.pull_request.number" in doc["concurrency"]["group"]
    assert doc["concurrency"]["cancel-in-progress"] is True
    everything = "\n".join(runs(job) for job in doc["jobs"].values())
    for command in ("make venv", "specops validate", "specops render --check", "make test", "specops review"):
        assert command in everything, command
    # Code in a pull request never runs as the identity that applies: only the read-only plan identity signs in.
    text = (WORKFLOWS / "pr.yml").read_text()
    assert "vars.AZURE_CLIENT_ID" not in text and text.count("vars.AZURE_PLAN_CLIENT_ID") == 3
    # The review comment holds the plan of the environment a merge applies to (dev once Azure is connected).
    assert re.search(r"specops review [^\n]*--plan-env \"\$plan_env\"[^\n]*--out comment\.md", everything)


def test_pr_plan_is_one_comment_updated_in_place():
    doc = workflow("pr.yml")
    scripts = [s["with"]["script"] for job in doc["jobs"].values() for s in steps(job)
               if uses(s, "actions/github-script")]
    assert len(scripts) == 1, "exactly one step writes the plan comment"
    script = scripts[0]
    assert PLAN_MARKER in script
    assert "updateComment" in script and "createComment" in script
    assert "listComments" in script and "paginate" in script, "the marker must be searched in every comment page"
    assert "comment.md" in script, "the comment is what `specops review` wrote"


def test_main_workflow_promotes_dev_then_prod_behind_approval():
    doc = workflow("main.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    (dev,) = jobs_applying(jobs, "dev")
    (prod,) = jobs_applying(jobs, "prod")
    assert environment_name(jobs[prod]) == "prod"
    assert dev in ancestors(jobs, prod)
    assert re.search(r"specops validate", "".join(runs(jobs[j]) for j in ancestors(jobs, dev)))
    gates = [j for j in ancestors(jobs, prod) if dev in ancestors(jobs, j)]
    assert gates, "a gate job sits between the dev apply and the prod apply"
    assert any("--detailed-exitcode" in runs(jobs[g]) for g in gates)
    assert environment_name(jobs[dev]) != "prod"


def test_retrain_workflow():
    from croniter import croniter

    from specops.spec import Pipeline, load_specs

    doc = workflow("retrain.yml")
    # The calendar is the Pipeline's triggers.schedule (an Azure ML job schedule): one, not two at the same minute.
    assert "schedule" not in doc["on"]
    calendars = [p.spec.triggers.schedule for p in load_specs(REPO, "dev").of_kind(Pipeline) if p.spec.triggers.schedule]
    assert calendars and all(croniter.is_valid(cron) for cron in calendars)
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert "reason" in inputs
    (job_name,) = jobs_applying(doc["jobs"], "dev")
    job = doc["jobs"][job_name]
    env = {**doc.get("env", {}), **job.get("env", {})}
    assert "SPECOPS_TRIGGER_REASON" in env
    assert "inputs.reason" in env["SPECOPS_TRIGGER_REASON"]
    # The free-text input must not be pasted into a script (script injection).
    assert "inputs.reason" not in runs(job)


def test_controller_workflow_hands_prods_retraining_requests_to_devs_pass():
    """prod's pass (no required reviewers: it may only roll back or ask) writes what it requests; dev's pass
    submits those retrainings, then makes its own pass."""
    doc = workflow("controller.yml")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    jobs = doc["jobs"]
    (prod,) = jobs_running(jobs, r"controller --once --json --env prod")
    (dev,) = jobs_running(jobs, r"controller --once --env dev")
    assert environment_name(jobs[prod]) not in (None, "prod") and environment_name(jobs[dev]) is None
    assert needs(jobs[dev]) == [prod]
    assert "steps.pass.outputs.requested" in jobs[prod]["outputs"]["requested"]
    assert f"needs.{prod}.outputs.requested" in jobs[dev]["env"]["REQUESTED"]
    script = runs(jobs[dev])
    assert script.index("specops retrain") < script.index("controller --once --env dev")
    assert "--env prod" not in script


# ---------------------------------------------------------------- Azure DevOps

def test_the_azure_devops_controller_hands_prods_requests_to_devs_pass():
    doc = load(REPO / "azure-pipelines-controller.yml")
    assert doc["trigger"] == "none" and doc["pr"] == "none" and doc["schedules"][0]["always"] == "true"
    prod, dev = doc["stages"]
    assert dev["dependsOn"] == prod["stage"]
    prod_script = "\n".join(s.get("inputs", {}).get("inlineScript", "") for s in ado_steps(prod))
    dev_steps = list(ado_steps(dev))
    dev_script = "\n".join(s.get("inputs", {}).get("inlineScript", "") for s in dev_steps)
    assert "controller --once --json --env prod" in prod_script and "isOutput=true]$requested" in prod_script
    (job,) = prod["jobs"]
    (pass_step,) = [s for s in ado_steps(prod) if s.get("name") == "pass"]
    requested = next(v["value"] for v in dev["variables"] if isinstance(v, dict) and v.get("name") == "requested")
    assert requested == f"$[ stageDependencies.{prod['stage']}.{job['job']}.outputs['{pass_step['name']}.requested'] ]"
    assert dev_script.index("specops retrain") < dev_script.index("controller --once --env dev")
    assert "$(requested)" not in dev_script  # through env only


def ado_steps(node):
    for _, key, value in walk(node):
        if key == "steps" and isinstance(value, list):
            yield from value


def test_azure_pipelines_stages():
    doc = load(AZURE_PIPELINES)
    stages = {s["stage"]: s for s in doc["stages"]}
    assert list(stages) == ["Validate", "Plan", "ApplyDev", "Gate", "ApplyProd"]
    order = list(stages)
    for before, after in zip(order, order[1:]):
        depends = stages[after].get("dependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        assert before in depends, f"{after} must depend on {before}"
    assert "ApplyDev" in stages["ApplyProd"]["dependsOn"]
    for name in ("ApplyDev", "ApplyProd"):
        assert "refs/heads/main" in stages[name]["condition"], f"{name} runs on main only"

    (deployment,) = stages["ApplyProd"]["jobs"]
    assert "deployment" in deployment, "ApplyProd is a deployment job (approvals live on its environment)"
    assert deployment["environment"] == "prod"
    scripts = "\n".join(s.get("inputs", {}).get("inlineScript", "") for s in ado_steps(deployment))
    assert applies(scripts, "prod")
    dev_scripts = "\n".join(s.get("inputs", {}).get("inlineScript", "") for s in ado_steps(stages["ApplyDev"]))
    assert applies(dev_scripts, "dev")
    gate_scripts = "\n".join(s.get("inputs", {}).get("inlineScript", "") for s in ado_steps(stages["Gate"]))
    assert "--detailed-exitcode" in gate_scripts


def test_azure_pipelines_plan_pull_requests_with_the_read_only_connection():
    """Validate and Plan run for pull requests: they sign in only through the read-only plan connection."""
    doc = load(AZURE_PIPELINES)
    assert doc["variables"]["devPlanServiceConnection"] != doc["variables"]["devServiceConnection"]
    stages = {s["stage"]: s for s in doc["stages"]}
    for name in ("Validate", "Plan"):
        connections = {s["inputs"]["azureSubscription"] for s in ado_steps(stages[name]) if "AzureCLI@" in str(s.get("task", ""))}
        assert connections <= {"${{ variables.devPlanServiceConnection }}"}, (name, connections)
    plan_connections = {s["inputs"]["azureSubscription"] for s in ado_steps(stages["Plan"]) if "AzureCLI@" in str(s.get("task", ""))}
    assert plan_connections == {"${{ variables.devPlanServiceConnection }}"}
    for name in ("ApplyDev", "ApplyProd"):  # what may change an environment runs on main only
        assert "refs/heads/main" in stages[name]["condition"]


def test_azure_pipelines_use_azure_cli_with_a_service_connection():
    doc = load(AZURE_PIPELINES)
    tasks = [s for s in ado_steps(doc) if str(s.get("task", "")).startswith("AzureCLI@")]
    assert tasks
    for task in tasks:
        assert task["task"] == "AzureCLI@2"
        assert task["inputs"]["azureSubscription"], "AzureCLI@2 needs a (workload identity federation) service connection"
    # Every script that talks to Azure runs inside AzureCLI@2, where the service connection is logged in.
    for step in ado_steps(doc):
        for key in ("script", "bash"):
            assert not re.search(r"specops[ \t]+(apply|plan)[^\n]*--env[ =](dev|prod)", step.get(key, "")), step


# ---------------------------------------------------------------- Bicep

def bicep_text() -> str:
    return "\n".join(p.read_text() for p in sorted(BICEP.rglob("*.bicep")))


BICEP_RESOURCES = {
    "storage": "Microsoft.Storage/storageAccounts",
    "blob service": "Microsoft.Storage/storageAccounts/blobServices",
    "key vault": "Microsoft.KeyVault/vaults",
    "log analytics": "Microsoft.OperationalInsights/workspaces",
    "application insights": "Microsoft.Insights/components",
    "container registry": "Microsoft.ContainerRegistry/registries",
    "ml workspace": "Microsoft.MachineLearningServices/workspaces",
    "compute cluster": "Microsoft.MachineLearningServices/workspaces/computes",
    "vnet": "Microsoft.Network/virtualNetworks",
    "private endpoint": "Microsoft.Network/privateEndpoints",
    "private dns zone": "Microsoft.Network/privateDnsZones",
    "role assignment": "Microsoft.Authorization/roleAssignments",
}


@pytest.mark.parametrize("kind", BICEP_RESOURCES)
def test_bicep_declares(kind):
    pattern = rf"^resource \w+ '{re.escape(BICEP_RESOURCES[kind])}@\d{{4}}-\d{{2}}-\d{{2}}(-preview)?'"
    assert re.search(pattern, bicep_text(), re.MULTILINE), kind


@pytest.mark.parametrize("setting", [
    "allowBlobPublicAccess: false",
    "minimumTlsVersion: 'TLS1_2'",
    "supportsHttpsTrafficOnly: true",
    "isVersioningEnabled: true",
    "enableRbacAuthorization: true",
    "enableSoftDelete: true",
    "enablePurgeProtection: true",
    "adminUserEnabled: false",
    "vmPriority: 'LowPriority'",
    "minNodeCount: 0",
    "type: 'SystemAssigned'",
    "computeType: 'AmlCompute'",
    "param enablePrivateNetwork bool",
    "publicNetworkAccess: publicAccess",
    "uniqueString(resourceGroup().id)",
    "groupIds:",
])
def test_bicep_setting(setting):
    assert setting in bicep_text()


def test_bicep_workspace_links_its_dependencies():
    main = (BICEP / "main.bicep").read_text()
    workspace = main[main.index("'Microsoft.MachineLearningServices/workspaces@"):]
    workspace = workspace[: workspace.index("\n}\n")]
    for link in ("storageAccount: storage.id", "keyVault: keyVault.id", "applicationInsights: appInsights.id",
                 "containerRegistry: registry.id"):
        assert link in workspace, link


def test_bicep_private_endpoints_cover_storage_key_vault_and_workspace():
    network = (BICEP / "modules" / "network.bicep").read_text()
    for group in ("blob", "file", "vault", "amlworkspace"):
        assert f"groupId: '{group}'" in network, group


def test_private_mode_isolates_the_workspaces_managed_network_in_bicep_and_terraform():
    """Public access off is not enough: serverless jobs, serverless Spark and managed endpoints run in Azure ML's
    managed network, which private mode must isolate too."""
    main = (BICEP / "main.bicep").read_text()
    workspace = main[main.index("'Microsoft.MachineLearningServices/workspaces@"):]
    workspace = workspace[: workspace.index("\n}\n")]
    assert re.search(r"managedNetwork: \{\s*isolationMode: enablePrivateNetwork \? 'AllowInternetOutbound' : 'Disabled'",
                     workspace)
    block = re.sub(r"\s+", " ", tf_block("azurerm_machine_learning_workspace", "this"))
    assert 'managed_network { isolation_mode = var.enable_private_network ? "AllowInternetOutbound" : "Disabled" }' in block


def test_the_registry_prod_is_promoted_through_is_made_with_its_users_in_bicep_and_terraform():
    """One environment makes the Azure ML registry (Project spec promotion.registry); dev's and prod's CI
    identities get AzureML Registry User on it; private mode closes it as it closes the workspace."""
    from specops.spec import load_specs

    promotion = load_specs(REPO, "prod").project.spec.environments["prod"].promotion
    assert promotion is not None and promotion.source == "dev"
    main = (BICEP / "main.bicep").read_text()
    registry = main[main.index("resource mlRegistry 'Microsoft.MachineLearningServices/registries@"):]
    registry = registry[: registry.index("\n}\n")]
    assert "if (!empty(mlRegistryName))" in registry and "publicNetworkAccess: publicAccess" in registry
    users = main[main.index("resource mlRegistryUsers"):]
    assert "for principalId in mlRegistryUserPrincipalIds" in users and "roles.registryUser" in users
    assert "registryUser: '1823dd4f-9b8c-4ab6-ab4e-7397a3684615'" in main
    terraform = (TERRAFORM / "registry.tf").read_text()
    assert 'type      = "Microsoft.MachineLearningServices/registries@2024-04-01"' in terraform
    assert 'publicNetworkAccess = local.public_access ? "Enabled" : "Disabled"' in terraform
    assert 'role_definition_name = "AzureML Registry User"' in terraform
    assert 'for_each             = var.ml_registry_name == "" ? toset([]) : toset(var.ml_registry_user_principal_ids)' in terraform
    assert 'source  = "Azure/azapi"' in (TERRAFORM / "versions.tf").read_text()


def test_the_ci_identity_may_read_canary_metrics_and_the_plan_identity_only_reads():
    """Canary analysis reads Azure Monitor (Microsoft.Insights/metrics/read), which AzureML Data Scientist lacks:
    without Monitoring Reader every analysis is refused and rolls back. The plan identity (pull requests) writes nothing."""
    main = (BICEP / "main.bicep").read_text()
    metrics = main[main.index("resource ciMetricsAssignment"):]
    metrics = metrics[: metrics.index("\n}\n")]
    assert "roles.monitoringReader" in metrics and "principalId: ciPrincipalId" in metrics
    assert re.search(r"monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05'", main)
    plan_blocks = [block for block in re.findall(r"\nresource \w+ 'Microsoft\.Authorization/roleAssignments@[^\n]+\n[\s\S]*?\n}", main)
                   if "principalId: planPrincipalId" in block]
    plan_roles = {role for block in plan_blocks for role in re.findall(r"roleDefinitionId: [^\n]*roles\.(\w+)", block)}
    assert plan_roles == {"reader", "blobReader"}, plan_roles
    rbac = (TERRAFORM / "rbac.tf").read_text()
    roles = dict(re.findall(r'(\S+) = \{\s*principal_id = var\.\w+\s*role\s*= "([^"]+)"', rbac))
    assert roles["ci-metrics"] == "Monitoring Reader"
    plan = {key: role for key, role in roles.items() if key.startswith("plan-")}
    assert plan and all(role in ("Reader", "Storage Blob Data Reader") for role in plan.values()), plan


def test_bicep_role_assignments_for_three_principals():
    text = bicep_text()
    for param in ("readerPrincipalId", "dataScientistPrincipalId", "approverPrincipalId"):
        assert re.search(rf"^param {param} string", text, re.MULTILINE), param
        assert re.search(rf"roleAssignments@[\d-]+' = if \(!empty\({param}\)\)", text), param
    assert "f6c7c914-8db3-469d-8ca1-694a8f32e121" in text, "AzureML Data Scientist"
    assert "acdd72a7-3385-48ef-bd42-f606fba81ae7" in text, "Reader"


def test_bicep_names_stay_within_azure_limits():
    # Worst case: the longest prefix namePrefix allows and the 13-character uniqueString().
    main = (BICEP / "main.bicep").read_text()
    max_prefix = int(re.search(r"@maxLength\((\d+)\)\nparam namePrefix", main).group(1))
    compact = min(max_prefix, int(re.search(r"var compactPrefix = take\(.*, (\d+)\)", main).group(1)))
    assert len("st") + compact + 13 <= 24  # storage
    assert len("kv") + compact + 13 <= 24  # key vault
    assert len("mlw--") + max_prefix + 13 <= 33  # workspace
    assert re.search(r"var storageName = take\('st\$\{compactPrefix\}\$\{suffix\}', 24\)", main)
    assert re.search(r"var keyVaultName = take\('kv\$\{compactPrefix\}\$\{suffix\}', 24\)", main)


def test_bicepparam_matches_main():
    main = (BICEP / "main.bicep").read_text()
    params = (BICEP / "main.bicepparam").read_text()
    assert re.search(r"^using 'main\.bicep'", params, re.MULTILINE)
    declared = set(re.findall(r"^param (\w+)", main, re.MULTILINE))
    given = set(re.findall(r"^param (\w+)", params, re.MULTILINE))
    assert given <= declared, given - declared
    required = {m for m in re.findall(r"^param (\w+) [\w.]+\s*$", main, re.MULTILINE)}
    assert required <= given, f"parameters without a default must be in main.bicepparam: {required - given}"


def test_bicep_modules_exist():
    for module in re.findall(r"^module \w+ '([^']+)'", bicep_text(), re.MULTILINE):
        assert (BICEP / module).exists(), module


# ---------------------------------------------------------------- Terraform

TF_FILES = ("versions.tf", "variables.tf", "main.tf", "network.tf", "rbac.tf", "registry.tf", "outputs.tf",
            "terraform.tfvars.example")


def tf_text() -> str:
    return "\n".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf")))


def tf_block(kind: str, name: str) -> str:
    text = tf_text()
    start = text.index(f'resource "{kind}" "{name}" {{')
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0 and text[i] == "}":
            return text[start: i + 1]
    raise AssertionError(f"unbalanced braces in {kind}.{name}")


@pytest.mark.parametrize("name", TF_FILES)
def test_terraform_file_exists(name):
    assert (TERRAFORM / name).is_file()


def test_terraform_pins_azurerm_4():
    versions = (TERRAFORM / "versions.tf").read_text()
    assert re.search(r'source\s*=\s*"hashicorp/azurerm"\s*\n\s*version\s*=\s*"~> 4\.\d+"', versions)
    assert re.search(r'provider "azurerm"', versions)


@pytest.mark.parametrize("kind", [
    "azurerm_resource_group", "random_string", "azurerm_storage_account", "azurerm_key_vault",
    "azurerm_log_analytics_workspace", "azurerm_application_insights", "azurerm_container_registry",
    "azurerm_machine_learning_workspace", "azurerm_machine_learning_compute_cluster",
    "azurerm_virtual_network", "azurerm_subnet", "azurerm_private_endpoint", "azurerm_private_dns_zone",
    "azurerm_role_assignment",
])
def test_terraform_declares(kind):
    assert re.search(rf'^resource "{kind}" "\w+"', tf_text(), re.MULTILINE), kind


@pytest.mark.parametrize("kind,name,settings", [
    ("azurerm_storage_account", "this", ['min_tls_version = "TLS1_2"', "https_traffic_only_enabled = true",
                                         "allow_nested_items_to_be_public = false", "versioning_enabled = true",
                                         "public_network_access_enabled = local.public_access"]),
    ("azurerm_key_vault", "this", ["enable_rbac_authorization = true", "purge_protection_enabled = true",
                                   "soft_delete_retention_days = 90",
                                   "public_network_access_enabled = local.public_access"]),
    ("azurerm_container_registry", "this", ["admin_enabled = false"]),
    ("azurerm_machine_learning_workspace", "this", ['type = "SystemAssigned"',
                                                    "storage_account_id = azurerm_storage_account.this.id",
                                                    "key_vault_id = azurerm_key_vault.this.id",
                                                    "application_insights_id = azurerm_application_insights.this.id",
                                                    "container_registry_id = azurerm_container_registry.this.id",
                                                    "public_network_access_enabled = local.public_access"]),
    ("azurerm_machine_learning_compute_cluster", "this", ['vm_priority = "LowPriority"', "min_node_count = 0"]),
    ("azurerm_application_insights", "this", ["workspace_id = azurerm_log_analytics_workspace.this.id"]),
])
def test_terraform_settings(kind, name, settings):
    block = re.sub(r"[ \t]+", " ", tf_block(kind, name))
    for setting in settings:
        assert setting in block, f"{kind}.{name}: {setting}"


def test_terraform_private_endpoints_cover_storage_key_vault_and_workspace():
    network = (TERRAFORM / "network.tf").read_text()
    for group in ("blob", "file", "vault", "amlworkspace"):
        assert re.search(rf'subresource\s*=\s*"{group}"', network), group
    assert re.search(r"public_access\s*=\s*!var\.enable_private_network", tf_text())


def test_terraform_role_assignments_for_three_principals():
    rbac = (TERRAFORM / "rbac.tf").read_text()
    for variable in ("reader_principal_id", "data_scientist_principal_id", "approver_principal_id"):
        assert f"var.{variable}" in rbac, variable
    assert '"AzureML Data Scientist"' in rbac and '"Reader"' in rbac
    assert 'if a.principal_id != ""' in rbac, "an empty principal ID must skip its assignment"


def test_terraform_variables_are_declared_and_examples_match():
    text = tf_text()
    declared = set(re.findall(r'^variable "(\w+)"', text, re.MULTILINE))
    used = set(re.findall(r"\bvar\.(\w+)", text))
    assert used <= declared, f"undeclared: {used - declared}"
    assert declared <= used, f"declared but unused: {declared - used}"
    example = set(re.findall(r"^(\w+)\s*=", (TERRAFORM / "terraform.tfvars.example").read_text(), re.MULTILINE))
    assert example <= declared, f"unknown in the example: {example - declared}"
    required = {m.group(1) for m in re.finditer(r'^variable "(\w+)" \{(.*?)^\}', text, re.MULTILINE | re.DOTALL)
                if "default" not in m.group(2)}
    assert required <= example, f"required variables missing from the example: {required - example}"


def test_terraform_references_resolve():
    text = tf_text()
    declared = {(m.group(1), m.group(2)) for m in re.finditer(r'^resource "(\w+)" "(\w+)"', text, re.MULTILINE)}
    declared |= {("data." + m.group(1), m.group(2)) for m in re.finditer(r'^data "(\w+)" "(\w+)"', text, re.MULTILINE)}
    for kind, name in re.findall(r"\b((?:data\.)?(?:azurerm|random)_\w+)\.(\w+)\b", text):
        if re.match(r"^(azurerm|random)_\w+$", kind) and (kind, name) not in declared:
            # `resource "x" "y"` headers themselves do not match this pattern (quoted), so anything left is a reference.
            raise AssertionError(f"reference to undeclared {kind}.{name}")
        if kind.startswith("data.") and (kind, name) not in declared:
            raise AssertionError(f"reference to undeclared {kind}.{name}")
    locals_declared = set(re.findall(r"^\s{2}(\w+)\s*=", "\n".join(
        m.group(1) for m in re.finditer(r"^locals \{(.*?)^\}", text, re.MULTILINE | re.DOTALL)), re.MULTILINE))
    assert set(re.findall(r"\blocal\.(\w+)", text)) <= locals_declared


def test_terraform_braces_balance():
    for path in TERRAFORM.glob("*.tf"):
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', re.sub(r"#.*", "", path.read_text()))
        assert code.count("{") == code.count("}"), path.name
        assert code.count("[") == code.count("]"), path.name


def test_terraform_parses_and_declares_the_resources():
    """python-hcl2 parses HCL as Terraform does; every required resource type must be declared."""
    import hcl2

    declared = set()
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            document = hcl2.load(handle)  # raises on a syntax error, naming the line
        for block in document.get("resource", []):
            declared |= set(block)
    required = {"azurerm_resource_group", "azurerm_storage_account", "azurerm_key_vault", "azurerm_application_insights",
                "azurerm_log_analytics_workspace", "azurerm_container_registry", "azurerm_machine_learning_workspace",
                "azurerm_machine_learning_compute_cluster", "azurerm_role_assignment", "azurerm_private_endpoint"}
    assert required <= {name.strip('"') for name in declared}, sorted(required - {n.strip('"') for n in declared})


# ---------------------------------------------------------------- docs

def test_docs_explain_every_variable_the_workflows_read():
    docs = (REPO / "docs" / "ci-cd.md").read_text()
    used = set()
    for path in WORKFLOW_FILES:
        used |= set(re.findall(r"\bvars\.([A-Z_]+)", path.read_text()))
    assert used, "workflows read their Azure target from variables"
    for name in sorted(used):
        assert name in docs, f"docs/ci-cd.md does not explain {name}"
    for name in ("pr.yml", "main.yml", "retrain.yml", "azure-pipelines.yml", "environment:prod", "pull_request"):
        assert name in docs, name


def test_docs_infrastructure_covers_both_tools_and_their_parameters():
    docs = (REPO / "docs" / "infrastructure.md").read_text()
    assert "infra/bicep" in docs and "infra/terraform" in docs
    for param in re.findall(r"^param (\w+)", (BICEP / "main.bicep").read_text(), re.MULTILINE):
        assert param in docs, f"docs/infrastructure.md does not describe Bicep parameter {param}"
    for variable in re.findall(r'^variable "(\w+)"', (TERRAFORM / "variables.tf").read_text(), re.MULTILINE):
        assert variable in docs, f"docs/infrastructure.md does not describe Terraform variable {variable}"
