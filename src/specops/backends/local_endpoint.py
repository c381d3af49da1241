"""What `specops apply` does with an Endpoint on the local backend.

The spec's `traffic` is the desired end state. Applying a change:

1. Starts the endpoint's server, or reloads the running one, so it hosts every
   declared deployment (a reload loads new models beside the served ones and
   never refuses a request: see serving.daemon). The live traffic weights
   stay, so a new model gets no traffic yet.
2. If live traffic differs from the spec's, moves it there: through the
   declared rollout (canary steps, blue-green, A/B, bandit) from the
   deployment carrying most traffic to the one the spec sends more to, or at
   once when the endpoint declares no rollout.
   A deployment that names a registry alias (`credit-risk@challenger`) is
   rolled out the same way when the alias moves to a new version while the
   deployment carries no live traffic: the champion/challenger loop, in which
   a retraining registers a challenger and the rollout's promotion makes it
   champion. Afterwards the server reloads once more so every alias
   resolves anew, and the spec's traffic applies.
3. A rollout that rolls back fails the apply: the endpoint stays Degraded, and
   the change stays in the plan, until the spec is reverted. A paused rollout
   is reported; the next apply (or `specops rollout resume`) resumes it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from specops.errors import SpecopsError
from specops.plan.backend import Reporter
from specops.registry import version_by_alias
from specops.rollout import Rollout
from specops.serving import daemon
from specops.serving.config import ServingConfig
from specops.serving.server import CONFIG_FILE
from specops.serving.traffic import read_traffic, set_traffic
from specops.spec.endpoints import Endpoint
from specops.state.records import ACTIVE, DEGRADED, HEALTHY, RolloutRecord

if TYPE_CHECKING:
    from specops.project import Project

RUNNING, STOPPED = "running", "stopped"


def observe(project: Project, endpoint: Endpoint) -> str:
    """One word (or a short phrase) for the plan: is the endpoint serving its spec?"""
    if daemon.server_info(project.paths, endpoint.name) is None:
        return STOPPED
    record = _rollout_record(project, endpoint)
    if record is not None and record.status != HEALTHY:
        return f"rollout {record.status}" + (f" (incident {record.incident})" if record.incident else "")
    moved = _moved_aliases(project, endpoint)
    if moved:
        return "stale (" + ", ".join(f"{name}: v{old} -> v{new}" for name, (old, new) in moved.items()) + ")"
    return RUNNING


def _moved_aliases(project: Project, endpoint: Endpoint) -> dict[str, tuple[str | None, str]]:
    """Deployments naming an alias that now points at another version than the one served."""
    aliased = {d.name: (d.model_ref.name, d.model_ref.alias) for d in endpoint.spec.deployments if d.model_ref.alias}
    if not aliased:
        return {}  # pinned versions: the spec's own diff says everything, and MLflow need not be imported
    client, served, moved = project.registry, _served_versions(project, endpoint.name), {}
    for deployment, (model, alias) in aliased.items():
        current = version_by_alias(client, model, alias)  # None: not set yet, the deployment is not ready
        if current is not None and served.get(deployment) != str(current.version):
            moved[deployment] = (served.get(deployment), str(current.version))
    return moved


def deploy(project: Project, endpoint: Endpoint, report: Reporter) -> dict[str, Any]:
    name, specs = endpoint.name, project.specs
    before = _served_versions(project, name)
    running = daemon.server_info(project.paths, name) is not None
    report(f"Endpoint/{name}: {'reloading the server (it keeps answering)' if running else 'starting the server'}")
    info = daemon.reload(specs, name) if running else daemon.start(specs, name)
    after = _served_versions(project, name)
    for deployment, version in after.items():
        if version is None:
            report(f"Endpoint/{name}: deployment {deployment} is NOT READY (see `specops endpoint serve` output in "
                   f"{project.paths.endpoint(name) / daemon.LOG_FILE})")
        elif before.get(deployment) not in (None, version):
            report(f"Endpoint/{name}: deployment {deployment} now serves version {version} (was {before[deployment]})")
    status = _move_traffic(project, endpoint, before, after, report)
    traffic, mirror = read_traffic(project.paths.endpoint(name))
    return {"port": info["port"], "versions": _served_versions(project, name), "traffic": traffic, "mirror_traffic": mirror,
            "rollout": status}


def remove(project: Project, name: str, report: Reporter) -> dict[str, Any]:
    if daemon.stop(project.paths, name):
        report(f"Endpoint/{name}: server stopped")
    return {}


def _move_traffic(project: Project, endpoint: Endpoint, before: dict, after: dict, report: Reporter) -> str | None:
    spec, state_dir = endpoint.spec, project.paths.endpoint(endpoint.name)
    live, live_mirror = read_traffic(state_dir)
    record = _rollout_record(project, endpoint)
    if record is not None and record.status in ACTIVE:
        report(f"Endpoint/{endpoint.name}: resuming the {record.strategy} rollout {record.stable} -> {record.canary}")
        return _finish(project, endpoint, Rollout(project, endpoint.name).resume(), report)
    stable = max(live, key=live.__getitem__)
    challenger = _new_version_without_traffic(live, before, after, after.get(stable))
    if challenger and spec.rollout is not None:
        return _start_rollout(project, endpoint, spec.rollout.strategy, challenger, stable, after, report)
    if _same(live, spec.traffic) and live_mirror == spec.mirror_traffic:
        return None
    canary = _canary(live, spec.traffic)
    if spec.rollout is not None and before and canary != stable:
        return _start_rollout(project, endpoint, spec.rollout.strategy, canary, stable, after, report)
    # A first deployment (nothing to roll out from), or no strategy declared: the spec's weights now.
    set_traffic(state_dir, list(after), spec.traffic, spec.mirror_traffic)
    report(f"Endpoint/{endpoint.name}: traffic {spec.traffic}")
    return None


def _new_version_without_traffic(live: dict[str, int], before: dict, after: dict, stable_version: str | None) -> str | None:
    """A deployment that now serves a new version (its alias moved) and carries no live traffic yet.

    A version the stable deployment already serves needs no rollout (a challenger alias reset to the champion).
    """
    return next((name for name, version in after.items()
                 if before and version not in (None, stable_version) and before.get(name) not in (None, version)
                 and not live.get(name)), None)


def _start_rollout(project: Project, endpoint: Endpoint, strategy: str, canary: str, stable: str, versions: dict,
                   report: Reporter) -> str:
    report(f"Endpoint/{endpoint.name}: {strategy} rollout {stable} (v{versions.get(stable)}) -> "
           f"{canary} (v{versions.get(canary)})")
    rollout = Rollout(project, endpoint.name)
    rollout.start(canary, stable)
    return _finish(project, endpoint, rollout.run(), report)


def _finish(project: Project, endpoint: Endpoint, record: RolloutRecord, report: Reporter) -> str:
    for event in record.history[-12:]:
        if event["event"] in ("weight", "analysis", "paused", "promoted", "rolled back"):
            detail = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("time", "event"))
            report(f"Endpoint/{endpoint.name}: {event['event']} {detail}")
    if record.status == DEGRADED:
        raise SpecopsError(
            f"the rollout of endpoint {endpoint.name} was rolled back: {record.message}. Traffic is back on "
            f"{record.stable}; incident {record.incident} is in .specops/incidents/. Revert the spec (or fix the "
            f"model and apply again); `specops rollout status {endpoint.name}` shows the analysis.")
    if record.status == HEALTHY:
        _settle(project, endpoint, report)
    else:
        report(f"Endpoint/{endpoint.name}: rollout {record.status}: {record.message}")
    return record.status


def _settle(project: Project, endpoint: Endpoint, report: Reporter) -> None:
    """After a promotion: the spec's weights, on a server whose aliases resolve anew (the promotion moved `champion`).

    Until the reload is done, all traffic stays on the promoted deployment, so no request meets the old model.
    """
    spec = endpoint.spec
    if any(d.model_ref.alias for d in spec.deployments):
        daemon.reload(project.specs, endpoint.name)
    set_traffic(project.paths.endpoint(endpoint.name), [d.name for d in spec.deployments], spec.traffic, spec.mirror_traffic)
    report(f"Endpoint/{endpoint.name}: traffic {spec.traffic}")
    record, versions = project.state.rollout(endpoint.name), _served_versions(project, endpoint.name)
    if record is not None and record.status == HEALTHY:  # the record shows where traffic now is
        record.stable = max(spec.traffic, key=spec.traffic.__getitem__)
        record.stable_version, record.weights = versions.get(record.stable), dict(spec.traffic)
        record.log("settled", traffic=spec.traffic, versions=versions)
        project.state.save_rollout(record)


def _canary(live: dict[str, int], desired: dict[str, int]) -> str:
    """The deployment the spec sends the most additional traffic to."""
    return max(desired, key=lambda d: desired[d] - live.get(d, 0))


def _same(a: dict[str, int], b: dict[str, int]) -> bool:
    return {k: v for k, v in a.items() if v} == {k: v for k, v in b.items() if v}


def _served_versions(project: Project, name: str) -> dict[str, str | None]:
    path = project.paths.endpoint(name) / CONFIG_FILE
    if daemon.server_info(project.paths, name) is None or not path.exists():
        return {}
    return {d.name: d.version for d in ServingConfig.load(path).deployments}


def _rollout_record(project: Project, endpoint: Endpoint) -> RolloutRecord | None:
    """The endpoint's rollout record, after noticing a reverted spec (a Degraded endpoint recovers)."""
    record = project.state.rollout(endpoint.name)
    if record is None or endpoint.spec.rollout is None:
        return record
    return Rollout(project, endpoint.name).status()
