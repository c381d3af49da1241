"""The Azure credential specops signs in with, chosen from where it runs.

`az login` on a CI runner (azure/login, AzureCLI@2) hands the CLI one OIDC token
exchanged once: after about an hour the CLI cannot refresh it, and an apply
walking a long canary (or its rollback) fails half way. The federated
credentials below ask the CI system for a fresh OIDC token whenever Entra ID
needs one, so a token never outlives the job:

- Azure DevOps (AzureCLI@2 or any task with a workload-identity service
  connection): `AzurePipelinesCredential`, from the AZURESUBSCRIPTION_* variables
  the task sets and SYSTEM_ACCESSTOKEN mapped into the step.
- GitHub Actions with `permissions: id-token: write`: a `ClientAssertionCredential`
  whose assertion is a new GitHub OIDC token each time (the request URL and
  token GitHub gives every step), for AZURE_CLIENT_ID in AZURE_TENANT_ID: what
  `WorkloadIdentityCredential` does from a token file, without the file going stale.
- A token file (AKS workload identity, AZURE_FEDERATED_TOKEN_FILE): `WorkloadIdentityCredential`.
- Anywhere else (a workstation after `az login`): `DefaultAzureCredential`.
"""
from __future__ import annotations

import json
import logging
import os
import urllib.parse
import urllib.request
from typing import Any

GITHUB_AUDIENCE = "api://AzureADTokenExchange"  # what Entra ID's federated credentials expect from GitHub


def azure_credential(environ: dict[str, str] | None = None) -> Any:
    """The credential for this process's surroundings (see the module docstring), imported lazily."""
    env = dict(os.environ if environ is None else environ)
    # Each credential DefaultAzureCredential tries logs its own failure; specops reports the outcome once.
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    kind = credential_kind(env)
    if kind == "azure-pipelines":
        from azure.identity import AzurePipelinesCredential

        return AzurePipelinesCredential(
            tenant_id=env["AZURESUBSCRIPTION_TENANT_ID"], client_id=env["AZURESUBSCRIPTION_CLIENT_ID"],
            service_connection_id=env["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
            system_access_token=env["SYSTEM_ACCESSTOKEN"])
    if kind == "github-oidc":
        from azure.identity import ClientAssertionCredential

        return ClientAssertionCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"],
                                         lambda: github_oidc_token(env))
    if kind == "workload-identity":
        from azure.identity import WorkloadIdentityCredential

        return WorkloadIdentityCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def credential_kind(env: dict[str, str]) -> str:
    """Which credential `azure_credential` builds: the most specific surroundings that are complete win."""
    if all(env.get(v) for v in ("SYSTEM_ACCESSTOKEN", "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                                "AZURESUBSCRIPTION_CLIENT_ID", "AZURESUBSCRIPTION_TENANT_ID")):
        return "azure-pipelines"
    if all(env.get(v) for v in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                                "AZURE_CLIENT_ID", "AZURE_TENANT_ID")):
        return "github-oidc"
    if env.get("AZURE_FEDERATED_TOKEN_FILE") and env.get("AZURE_CLIENT_ID") and env.get("AZURE_TENANT_ID"):
        return "workload-identity"
    return "default"


def github_oidc_token(env: dict[str, str], timeout_s: float = 30.0) -> str:
    """A fresh OIDC token from GitHub Actions for Entra ID's audience (valid minutes; asked for each exchange)."""
    url = env["ACTIONS_ID_TOKEN_REQUEST_URL"]
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    request = urllib.request.Request(f"{url}{separator}audience={urllib.parse.quote(GITHUB_AUDIENCE, safe='')}",
                                     headers={"Authorization": f"Bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # GitHub's own URL, given to the step
        token = json.load(answer).get("value")
    if not token:
        raise RuntimeError("GitHub Actions answered the OIDC token request without a token")
    return str(token)
