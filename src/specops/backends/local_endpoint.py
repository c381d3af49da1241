"""What `specops apply` does with an Endpoint on the local backend.

The spec's `traffic` is the desired end state. Applying a change:

1. (Re)starts the endpoint's server so it hosts every declared deployment
   (a zero-downtime replacement when one runs: see serving.daemon). The new
   server keeps the live traffic weights, so a new model gets no traffic yet.
2. If live traffic differs from the spec's, moves it there: through the
   declared rollout (canary steps, blue-green, A/B, bandit) from the
   deployment carrying most traffic to the one the spec sends more to, or at
   once when the endpoint declares no rollout.
3. A rollout that rolls back fails the apply: the endpoint stays Degraded, and
   the change stays in the plan, until the spec is reverted. A paused rollout
   is reported; the next apply (or `specops rollout resume`) resumes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from specops.backends.base import Reporter
from specops.errors import SpecopsError
from specops.serving import daemon
from specops.serving.config import ServingConfig, endpoint_dir
from specops.serving.server import CONFIG_FILE
from specops.serving.traffic import read_traffic, set_traffic
from specops.spec import SpecSet
from specops.spec.endpoints import Endpoint

RUNNING, STOPPED = "running", "stopped"


def observe(root: Path, endpoint: Endpoint, specs: SpecSet) -> str:
    """One word (or a short phrase) for the plan: is the endpoint serving its spec?"""
    if daemon.server_info(root, endpoint.name) is None:
        return STOPPED
    record = _rollout_record(root, endpoint, specs)
    if record is not None and record.status != "Healthy":
        return f"rollout {record.status}" + (f" (incident {record.incident})" if record.incident else "")
    return RUNNING


def deploy(root: Path, endpoint: Endpoint, specs: SpecSet, report: Reporter) -> dict[str, Any]:
    name = endpoint.name
    before = _served_versions(root, name)
    replace = daemon.server_info(root, name) is not None
    report(f"Endpoint/{name}: {'replacing the server (no request refused)' if replace else 'starting the server'}")
    info = daemon.start(root, name, replace=replace)
    after = _served_versions(root, name)
    for deployment, version in after.items():
        if version is None:
            report(f"Endpoint/{name}: deployment {deployment} is NOT READY (see `specops endpoint serve` output in "
                   f"{endpoint_dir(root, name) / daemon.LOG_FILE})")
        elif before.get(deployment) not in (None, version):
            report(f"Endpoint/{name}: deployment {deployment} now serves version {version} (was {before[deployment]})")
    status = _move_traffic(root, endpoint, specs, before, after, report)
    traffic, mirror = read_traffic(endpoint_dir(root, name))
    return {"port": info["port"], "versions": after, "traffic": traffic, "mirror_traffic": mirror, "rollout": status}


def remove(root: Path, name: str, report: Reporter) -> dict[str, Any]:
    if daemon.stop(root, name):
        report(f"Endpoint/{name}: server stopped")
    return {}


def _move_traffic(root: Path, endpoint: Endpoint, specs: SpecSet, before: dict, after: dict, report: Reporter) -> str | None:
    spec, state_dir = endpoint.spec, endpoint_dir(root, endpoint.name)
    live, live_mirror = read_traffic(state_dir)
    record = _rollout_record(root, endpoint, specs)
    if record is not None and record.status in ("Progressing", "Paused", "Aborted"):
        report(f"Endpoint/{endpoint.name}: resuming the {record.strategy} rollout {record.stable} -> {record.canary}")
        return _finish(root, endpoint, specs, _rollout(root, endpoint, specs).resume(), report)
    if _same(live, spec.traffic) and live_mirror == spec.mirror_traffic:
        return None
    if spec.rollout is None or not before:
        # Nothing to roll out from (a first deployment), or no strategy declared: the spec's weights now.
        set_traffic(state_dir, list(after), spec.traffic, spec.mirror_traffic)
        report(f"Endpoint/{endpoint.name}: traffic {spec.traffic}")
        return None
    canary, stable = _canary(live, spec.traffic), max(live, key=live.get)
    if canary == stable:
        set_traffic(state_dir, list(after), spec.traffic, spec.mirror_traffic)
        return None
    report(f"Endpoint/{endpoint.name}: {spec.rollout.strategy} rollout {stable} (v{after.get(stable)}) -> "
           f"{canary} (v{after.get(canary)})")
    rollout = _rollout(root, endpoint, specs)
    rollout.start(canary, stable)
    return _finish(root, endpoint, specs, rollout.run(), report)


def _finish(root: Path, endpoint: Endpoint, specs: SpecSet, record, report: Reporter) -> str:
    for event in record.history[-12:]:
        if event["event"] in ("weight", "analysis", "paused", "promoted", "rolled back"):
            detail = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("time", "event"))
            report(f"Endpoint/{endpoint.name}: {event['event']} {detail}")
    if record.status == "Degraded":
        raise SpecopsError(
            f"the rollout of endpoint {endpoint.name} was rolled back: {record.message}. Traffic is back on "
            f"{record.stable}; incident {record.incident} is in .specops/incidents/. Revert the spec (or fix the "
            f"model and apply again); `specops rollout status {endpoint.name}` shows the analysis.")
    if record.status == "Healthy":
        spec = endpoint.spec
        set_traffic(endpoint_dir(root, endpoint.name), [d.name for d in spec.deployments], spec.traffic, spec.mirror_traffic)
    else:
        report(f"Endpoint/{endpoint.name}: rollout {record.status}: {record.message}")
    return record.status


def _canary(live: dict[str, int], desired: dict[str, int]) -> str:
    """The deployment the spec sends the most additional traffic to."""
    return max(desired, key=lambda d: desired[d] - live.get(d, 0))


def _same(a: dict[str, int], b: dict[str, int]) -> bool:
    return {k: v for k, v in a.items() if v} == {k: v for k, v in b.items() if v}


def _served_versions(root: Path, name: str) -> dict[str, str | None]:
    path = endpoint_dir(root, name) / CONFIG_FILE
    if daemon.server_info(root, name) is None or not path.exists():
        return {}
    return {d.name: d.version for d in ServingConfig.load(path).deployments}


def _rollout(root: Path, endpoint: Endpoint, specs: SpecSet):
    from specops.rollout.controller import Rollout

    return Rollout(root, endpoint.name, specs=specs)


def _rollout_record(root: Path, endpoint: Endpoint, specs: SpecSet):
    """The endpoint's rollout record, after noticing a reverted spec (a Degraded endpoint recovers)."""
    from specops.rollout.state import load_record

    record = load_record(root, endpoint.name)
    if record is None or endpoint.spec.rollout is None:
        return record
    return _rollout(root, endpoint, specs).status()
