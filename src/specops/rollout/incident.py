"""Incident records: a root-cause template rendered with what the rollout saw when it failed.

The project's own `docs/runbooks/rollback-incident.md` wins, so a team can
adapt the template; otherwise the one shipped with specops is used.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, select_autoescape

from specops.core.clock import now
from specops.core.paths import ProjectPaths
from specops.errors import SpecopsError
from specops.state.records import RolloutRecord
from specops.state.storage import Storage

TEMPLATE = Path("docs") / "runbooks" / "rollback-incident.md"
_SHIPPED = Path(__file__).resolve().parents[3] / TEMPLATE


def new_incident_id() -> str:
    return time.strftime("INC-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


def write_incident(paths: ProjectPaths, storage: Storage, record: RolloutRecord, trigger: str,
                   analysis: dict[str, Any] | None) -> str:
    """Write the incident record in the environment's storage; returns where it is."""
    if record.incident is None:  # a rollback opens the incident before it writes the record
        raise SpecopsError(f"the rollback of {record.endpoint} has no incident id to write its record under")
    template = paths.root / TEMPLATE if (paths.root / TEMPLATE).exists() else _SHIPPED
    # A Markdown record: HTML escaping would corrupt it, so only HTML/XML templates would be escaped.
    environment = Environment(undefined=StrictUndefined, keep_trailing_newline=True,
                              autoescape=select_autoescape(default_for_string=False))
    text = environment.from_string(template.read_text()).render(
        incident=record.incident, endpoint=record.endpoint, opened=now(), trigger=trigger, strategy=record.strategy,
        canary=record.canary, stable=record.stable, model=record.model, canary_version=record.canary_version,
        stable_version=record.stable_version, weights=record.weights, step=record.step, analysis=analysis,
    )
    incident = record.incident
    name = ProjectPaths.relative(lambda p: p.incident(incident))
    storage.write(name, text)
    return storage.describe(name)
