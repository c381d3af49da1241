"""The credential specops signs in with: a federated one that fetches fresh CI tokens, chosen from the environment."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.identity import AzurePipelinesCredential, ClientAssertionCredential, DefaultAzureCredential, WorkloadIdentityCredential

from specops.core.credentials import GITHUB_AUDIENCE, azure_credential, credential_kind, github_oidc_token

ADO = {"SYSTEM_ACCESSTOKEN": "ado-token", "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "conn-id",
       "AZURESUBSCRIPTION_CLIENT_ID": "00000000-0000-0000-0000-0000000000c1",
       "AZURESUBSCRIPTION_TENANT_ID": "00000000-0000-0000-0000-0000000000a1"}
IDS = {"AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000c2", "AZURE_TENANT_ID": "00000000-0000-0000-0000-0000000000a2"}


class GitHubTokenService(BaseHTTPRequestHandler):
    """GitHub Actions' OIDC token endpoint: a new token per request, for the audience asked."""

    seen: list[tuple[str, str]] = []

    def do_GET(self):  # http.server's name
        query = parse_qs(urlsplit(self.path).query)
        self.seen.append((query["audience"][0], self.headers["Authorization"]))
        body = json.dumps({"value": f"github-oidc-{len(self.seen)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def github() -> dict[str, str]:
    server = HTTPServer(("127.0.0.1", 0), GitHubTokenService)
    GitHubTokenService.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{server.server_port}/token?api-version=2.0",
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-bearer", **IDS}
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("environ, kind, cls", [
    (ADO, "azure-pipelines", AzurePipelinesCredential),
    ({"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x/token", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t", **IDS}, "github-oidc",
     ClientAssertionCredential),
    ({"AZURE_FEDERATED_TOKEN_FILE": "/var/run/token", **IDS}, "workload-identity", WorkloadIdentityCredential),
    # An incomplete set falls through: no half-configured federated credential.
    ({"SYSTEM_ACCESSTOKEN": "t", "AZURESUBSCRIPTION_CLIENT_ID": "c"}, "default", DefaultAzureCredential),
    ({}, "default", DefaultAzureCredential),
])
def test_the_credential_is_chosen_from_where_specops_runs(environ, kind, cls, monkeypatch):
    for name in (*ADO, *IDS, "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)  # WorkloadIdentityCredential reads its settings from the environment
    assert credential_kind(environ) == kind
    assert isinstance(azure_credential(environ), cls)


def test_each_github_assertion_is_a_fresh_token_for_entra_id(github: dict[str, str]):
    """An apply longer than a token's life asks GitHub again: every exchange gets a new token."""
    assert [github_oidc_token(github), github_oidc_token(github)] == ["github-oidc-1", "github-oidc-2"]
    assert GitHubTokenService.seen == [(GITHUB_AUDIENCE, "Bearer runner-bearer")] * 2
