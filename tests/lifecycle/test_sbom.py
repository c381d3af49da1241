"""Every registered model version carries a CycloneDX SBOM of the environment that trained it."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from specops.lifecycle.sbom import environment_sbom
from specops.lifecycle.stages import STAGES
from specops.registry import connect
from specops.spec.loader import load_specs

MODEL = "credit-risk"


def components(bom: dict) -> dict[str, dict]:
    return {c["name"].lower(): c for c in bom["components"]}


def test_the_sbom_is_valid_cyclonedx_listing_the_installed_packages():
    sbom = environment_sbom(MODEL, "7")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.text) is None
    bom = json.loads(sbom.text)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    subject = bom["metadata"]["component"]
    assert (subject["type"], subject["name"], subject["version"]) == ("machine-learning-model", MODEL, "7")
    listed = components(bom)
    assert sbom.packages == len(listed) >= 50
    for name in ("scikit-learn", "mlflow", "pandas", "numpy"):
        assert listed[name]["version"] == importlib.metadata.version(name), name
        assert listed[name]["purl"] == f"pkg:pypi/{name}@{importlib.metadata.version(name)}"
    # The model depends on every package.
    (model_deps,) = [d for d in bom["dependencies"] if d["ref"] == subject["bom-ref"]]
    assert len(model_deps["dependsOn"]) == sbom.packages
    assert sbom.sha256 == hashlib.sha256(sbom.text.encode()).hexdigest()


def test_a_registered_version_has_its_sbom_in_its_run_and_tags(project, run, tmp_path: Path):
    run(*STAGES)
    client = connect(load_specs(project))
    version = client.get_model_version_by_alias(MODEL, "champion")
    path = version.tags["sbom.path"]
    assert path == f"registry/v{version.version}/sbom/cyclonedx.json"

    local = Path(client.download_artifacts(version.run_id, path, str(tmp_path)))
    text = local.read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == version.tags["sbom.sha256"]
    bom = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == MODEL
    assert bom["metadata"]["component"]["version"] == str(version.version)
    listed = components(bom)
    assert listed["scikit-learn"]["version"] == importlib.metadata.version("scikit-learn")
    assert listed["mlflow"]["version"] == importlib.metadata.version("mlflow")
