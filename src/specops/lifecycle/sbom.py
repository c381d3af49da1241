"""A CycloneDX SBOM of the Python environment a model version was trained in.

The `register` stage runs in the interpreter that trained the model (DVC runs
every stage with the same environment), so the distributions installed in it
are the model's software bill of materials: name, version, package URL and,
where the package declares one, its license expression. The model itself is
the BOM's subject (`machine-learning-model`) and depends on every package.

Built with cyclonedx-python-lib from `importlib.metadata` in-process, rather
than by spawning `cyclonedx-py environment`, which would start a second
interpreter to list the same distributions.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import sys
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

ARTIFACT = "sbom/cyclonedx.json"  # under the version's folder in its run (lineage.artifact_dir)
SPEC_VERSION = "1.6"


@dataclass(frozen=True)
class Sbom:
    text: str  # CycloneDX JSON
    sha256: str
    packages: int


def normalize(name: str) -> str:
    """PEP 503 name, as package URLs for PyPI use it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str | None  # the SPDX License-Expression, when the package declares one


def _headers(dist: importlib.metadata.Distribution) -> Message | None:
    """The core metadata headers only: parsing the whole file (with the long description) costs 10x more."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    return HeaderParser().parsestr(text.split("\n\n", 1)[0]) if text else None


def installed() -> dict[str, Package]:
    """Every distribution importable from this interpreter, first on sys.path winning (as import does)."""
    found: dict[str, Package] = {}
    for dist in importlib.metadata.distributions():
        headers = _headers(dist)
        if headers is None or not headers["Name"] or normalize(headers["Name"]) in found:
            continue
        found[normalize(headers["Name"])] = Package(headers["Name"], headers["Version"], headers["License-Expression"])
    return found


def _licenses(package: Package, factory: LicenseFactory) -> list:
    # make_from_string keeps a string that is not a valid SPDX expression as a license name.
    return [factory.make_from_string(package.license)] if package.license else []


def environment_sbom(model_name: str, version: str) -> Sbom:
    factory = LicenseFactory()
    model = Component(type=ComponentType.MACHINE_LEARNING_MODEL, name=model_name, version=str(version),
                      bom_ref=f"model:{model_name}@{version}")
    bom = Bom()
    bom.metadata.component = model
    bom.metadata.properties.update([
        Property(name="specops:python", value=platform.python_version()),
        Property(name="specops:implementation", value=sys.implementation.name),
        Property(name="specops:platform", value=platform.platform()),
    ])
    packages = []
    for key, package in sorted(installed().items()):
        purl = PackageURL(type="pypi", name=key, version=package.version)
        component = Component(type=ComponentType.LIBRARY, name=package.name, version=package.version,
                              purl=purl, bom_ref=purl.to_string(), licenses=_licenses(package, factory))
        bom.components.add(component)
        packages.append(component)
    bom.register_dependency(model, packages)
    text = JsonV1Dot6(bom).output_as_string(indent=1)
    return Sbom(text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), packages=len(packages))
