"""Desired vs actual -> an ordered Plan."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from specops.plan.model import Action, Cause, Change, Operation, Plan, Resource


def diff_fields(old: Any, new: Any, path: str = "") -> list[Change]:
    """Field-by-field differences, dotted paths, recursing into mappings only."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes.extend(diff_fields(old.get(key), new.get(key), sub))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (o, n) in enumerate(zip(old, new)) for c in diff_fields(o, n, f"{path}[{i}]")]
    return [] if old == new else [Change(path, old, new)]


def make_plan(env: str, backend: str, desired: list[Resource], actual: dict[str, dict[str, Any]],
              causes: Mapping[str, tuple[Cause, ...]] | None = None) -> Plan:
    """`actual` maps resource key -> observed fields (stored plus live); `causes` says why a resource's
    live fields differ, by key (Backend.causes)."""
    plan = Plan(env=env, backend=backend)
    for resource in topological(desired):
        observed = actual.get(resource.key)
        if observed is None:
            plan.operations.append(Operation(Action.CREATE, resource.kind, resource.name, None, resource.fields, resource=resource))
            continue
        changes = diff_fields(observed, resource.fields)
        if changes:
            plan.operations.append(
                Operation(Action.UPDATE, resource.kind, resource.name, observed, resource.fields, tuple(changes), resource,
                          tuple((causes or {}).get(resource.key, ())))
            )
    wanted = {r.key for r in desired}
    for key in sorted(set(actual) - wanted, reverse=True):
        kind, name = key.split("/", 1)
        plan.operations.append(Operation(Action.DELETE, kind, name, actual[key], None))
    return plan


def topological(resources: Iterable[Resource]) -> list[Resource]:
    """Dependencies first; ties broken by key so plans are stable."""
    by_key = {r.key: r for r in resources}
    ordered: list[Resource] = []
    seen: set[str] = set()

    def visit(resource: Resource) -> None:
        if resource.key in seen:
            return
        seen.add(resource.key)
        for dep in sorted(resource.depends_on):
            if dep in by_key:
                visit(by_key[dep])
        ordered.append(resource)

    for key in sorted(by_key):
        visit(by_key[key])
    return ordered
