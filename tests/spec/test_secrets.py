"""`specops validate` rejects spec values that look like secrets, naming file, line and field."""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from specops.spec import load_specs
from specops.spec.secrets import classify
from tests.conftest import REPO
from tests.spec.test_loader import errors_of, project  # noqa: F401 (a fixture)

# Built from parts so that this file does not itself look like it holds secrets.
B64_KEY = base64.b64encode(hashlib.sha512(b"specops").digest()).decode()  # 88 characters, like a storage account key
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" + "K1l2M3n4O5p6Q7r8"
JWT = ".".join(["eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"])

SECRETS = [
    ("storage", f"DefaultEndpointsProtocol=https;AccountName=stcredit;AccountKey={B64_KEY};EndpointSuffix=core.windows.net",
     "AccountKey"),
    ("events", f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={B64_KEY[:44]}",
     "SharedAccessKey"),
    ("data_url", "https://st.blob.core.windows.net/c/credit.csv?sv=2022-11-02&sp=r&se=2030-01-01&sig=aBcD1234eFgH5678iJkL%3D",
     "SAS token"),
    ("auth", "Bearer " + "abcDEF123456ghiJKL789012", "bearer token"),
    ("tls", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "private key"),
    ("github", GITHUB, "GitHub token"),
    ("github2", "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "fine-grained"),
    ("aws", "AKIA" + "IOSFODNN7EXAMPLE", "AWS access key"),
    ("session", JWT, "JSON Web Token"),
    ("features_db", "postgresql://ml:" + "S3cretPass" + "@db.example.com/features", "password in it"),
    ("api_key", "q7Zt9LmX2vB4nR8wK1pY6cH3", "field named like a key"),
    ("clientSecret", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "field named like a key"),  # 40 hex digits
    ("SERVICE_CONNECTION_STRING", "Xy7" + B64_KEY[:30], "field named like a key"),
]

NOT_SECRETS = [
    ("storage", "${STORAGE_CONNECTION_STRING}"),
    ("storage", "DefaultEndpointsProtocol=https;AccountName=stcredit;AccountKey=${STORAGE_KEY}"),
    ("data_url", "https://st.blob.core.windows.net/c/credit.csv?${SAS_TOKEN}"),
    ("data_url", "https://st.blob.core.windows.net/c/credit.csv?sig=${SAS_SIGNATURE}"),
    ("api_key", "${SCORING_API_KEY}"),
    ("api_key", "credit_risk_model_v2_final"),  # an identifier, not a random value
    ("key_column", "applicant_id"),
    ("password_policy", "at-least-12-characters"),
    ("token_budget", "short"),
    ("description", "calls the scorer with a Bearer token from the environment"),
    ("data_sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b9f86d081884c7d659a2feaa0"),  # not a secret's name
    ("tracking_uri", "https://mlflow.example.com/"),
    ("repo", "https://user@github.com/org/repo"),
    ("model", "credit-risk@champion"),
    ("monitor_window", "PT1M"),
]


@pytest.mark.parametrize("key,value,what", SECRETS, ids=[s[0] for s in SECRETS])
def test_classify_recognises(key, value, what):
    found = classify(key, value)
    assert found is not None and what in found, found


@pytest.mark.parametrize("key,value", NOT_SECRETS, ids=[f"{k}={v[:20]}" for k, v in NOT_SECRETS])
def test_classify_leaves_alone(key, value):
    assert classify(key, value) is None


# ---------------------------------------------------------------- through the loader



def add_local_values(project: Path, lines: list[str]) -> int:
    """Append keys to the local environment's `values`; return the 1-based line of the first."""
    path = project / "specs" / "project.yaml"
    text = path.read_text().splitlines(keepends=True)
    anchor = next(i for i, line in enumerate(text) if line.startswith("        monitor_window: PT1M"))
    text[anchor + 1:anchor + 1] = [f"        {line}\n" for line in lines]
    path.write_text("".join(text))
    return anchor + 2


def yaml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_example_specs_and_every_environment_pass():
    for env in ("local", "dev", "prod"):
        load_specs(REPO, env)


@pytest.mark.parametrize("key,value,what", SECRETS, ids=[s[0] for s in SECRETS])
def test_a_secret_literal_is_reported_with_file_line_and_field(project, key, value, what):
    line = add_local_values(project, [f"{key}: {yaml_string(value)}"])
    [error] = errors_of(project)
    field = f"spec.environments.local.values.{key}"
    assert error.startswith(f"specs/project.yaml:{line}:9: {field}: {key!r} looks like "), error
    assert what in error
    assert "${VAR}" in error and "Key Vault" in error
    middle = value[len(value) // 2 - 6:len(value) // 2 + 6]
    assert value not in error and middle not in error, "the message must not repeat the secret"


def test_every_secret_is_reported_at_once(project):
    line = add_local_values(project, [f"github: {GITHUB}", "fine: ${GITHUB_TOKEN}", f"session: {JWT}"])
    errors = errors_of(project)
    assert [e.split(": ")[0:2] for e in errors] == [
        [f"specs/project.yaml:{line}:9", "spec.environments.local.values.github"],
        [f"specs/project.yaml:{line + 2}:9", "spec.environments.local.values.session"],
    ]


def test_a_secret_in_a_list_and_in_a_command_line(project):
    line = add_local_values(project, ["headers:", f"  - {yaml_string('Bearer ' + 'abcDEF123456ghiJKL789012')}"])
    training = project / "specs" / "pipelines" / "training.yaml"
    text = training.read_text()
    assert "--seed 7" in text
    training.write_text(text.replace("--seed 7", f"--seed 7 --hub-token {GITHUB}", 1))
    command_line = next(i for i, text_line in enumerate(text.splitlines(), 1) if "--seed 7" in text_line)
    errors = errors_of(project)
    assert any(e.startswith(f"specs/project.yaml:{line + 1}:13: spec.environments.local.values.headers[0]: 'headers' "
                            "looks like a bearer token") for e in errors), errors
    assert any(e.startswith(f"specs/pipelines/training.yaml:{command_line}:") and ".command: 'command' looks like a GitHub token" in e
               for e in errors), errors


def test_a_secret_brought_in_by_an_overlay_is_caught_where_it_lands(project):
    """Overlays are rendered first: a secret in `values` is also caught in the spec that uses it."""
    path = project / "specs" / "project.yaml"
    text = path.read_text()
    path.write_text(text.replace("        max_parallel: 0\n", f"        max_parallel: 0\n        hub: {GITHUB}\n", 1))
    training = project / "specs" / "pipelines" / "training.yaml"
    training.write_text(training.read_text().replace("--seed 7", "--seed 7 --hub {{ values.hub }}", 1))
    errors = errors_of(project)
    assert any("spec.environments.local.values.hub" in e for e in errors)
    assert any(e.startswith("specs/pipelines/training.yaml:") and ".command:" in e for e in errors), errors


def test_references_in_every_form_are_accepted(project):
    add_local_values(project, [
        "storage: DefaultEndpointsProtocol=https;AccountName=stcredit;AccountKey=${STORAGE_KEY}",
        "api_key: ${SCORING_API_KEY}",
        "sas_url: https://st.blob.core.windows.net/c/credit.csv?${SAS_TOKEN}",
    ])
    load_specs(project)
