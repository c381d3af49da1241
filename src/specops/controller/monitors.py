"""Running a monitor and carrying out what its alert asks for.

The monitor (specops.monitoring) judges a window and names the actions it
wants; this module does them: a retraining is queued (once per window: the
event id is the window's), a rollback is driven through the endpoint's
rollout engine, a webhook is posted. Each action comes back as one line for
the report and the command output.
"""
from __future__ import annotations

from datetime import datetime

from specops.controller.events import Event, EventQueue
from specops.core.clock import epoch
from specops.core.durations import seconds
from specops.errors import SpecopsError
from specops.monitoring.runner import MonitorResult, NotifyRequest, RetrainRequest, RollbackRequest, notify
from specops.monitoring.runner import run_monitor as evaluate
from specops.project import Project
from specops.spec.endpoints import Endpoint
from specops.spec.monitors import Monitor
from specops.state.audit import AuditAction
from specops.state.records import ACTIVE, HEALTHY

ALERTS = {"drift": AuditAction.DRIFT_ALERT, "performance": AuditAction.PERFORMANCE_ALERT}


def run_monitor(project: Project, monitor: Monitor, now: datetime, queue: EventQueue | None = None) -> MonitorResult:
    """Run `monitor` for the window ending `now` and act on its alert (a repeated window acts no more)."""
    queue = queue or EventQueue(project.root)
    return evaluate(project.specs, monitor, now, lambda _, result: [act(project, queue, r) for r in result.requests])


def act(project: Project, queue: EventQueue, request: RetrainRequest | RollbackRequest | NotifyRequest) -> str:
    if isinstance(request, RetrainRequest):
        return queue_retrain(project, queue, request)
    if isinstance(request, RollbackRequest):
        return roll_back(project, request)
    return notify(request.reference, request.payload)


def queue_retrain(project: Project, queue: EventQueue, request: RetrainRequest) -> str:
    """Queue one retraining and audit `<reason>_alert` once (kpi's drift reaction time pairs it with retrain_started)."""
    if not queue.offer(Event(request.event_id, request.pipeline, request.reason, request.detail)):
        return f"retrain of {request.pipeline} already queued ({request.event_id})"
    monitor = request.evidence["monitor"]
    project.audit.record(ALERTS[request.reason], f"Monitor/{monitor}", pipeline=request.pipeline, event=request.event_id,
                         **request.evidence)
    return f"queued retrain of {request.pipeline} ({request.event_id})"


def roll_back(project: Project, request: RollbackRequest) -> str:
    """Traffic back to the stable deployment: a rollout still under way is aborted, a promotion within
    rollback_window is undone. Anything else has nothing to roll back to, and says so in the audit entry."""
    outcome = _roll_back(project, request)
    project.audit.record(AuditAction.ROLLBACK_REQUESTED, f"Endpoint/{request.endpoint}", outcome=outcome,
                         **request.evidence)
    return f"rollback of endpoint {request.endpoint}: {outcome}"


def _roll_back(project: Project, request: RollbackRequest) -> str:
    from specops.rollout import Rollout  # the serving stack: only when a rollback is asked for

    endpoint = project.specs.get(Endpoint, request.endpoint)
    record = project.state.rollout(request.endpoint)
    if endpoint is None or endpoint.spec.rollout is None or record is None:
        return "nothing to roll back (no rollout recorded for it)"
    try:
        if record.status in ACTIVE:
            done = Rollout(project, request.endpoint).abort(trigger=request.reason)
            return f"rollout aborted, traffic back on {done.stable} (incident {done.incident})"
        within = epoch(record.finished_at) + seconds(endpoint.spec.rollout.rollback_window) >= datetime.now().timestamp()
        if record.status == HEALTHY and record.previous is not None and within:
            done = Rollout(project, request.endpoint).undo()
            return f"promotion undone, traffic back on {done.stable} (incident {done.incident})"
    except SpecopsError as exc:  # e.g. the server is not running: the operators read it in the audit log
        return f"not rolled back: {exc}"
    return f"nothing to roll back (the rollout is {record.status}, past its rollback_window or never promoted)"
