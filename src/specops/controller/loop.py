"""The controller loop: one pass notices what is due and does it, for one project in one environment.

Each pass (`tick`) reads the specs afresh, then, on the local backend:
1. records a /metrics scrape of every served endpoint an SLO measures availability on
   (the SLO history grows by the clock, whoever asks or not);
2. queues the retraining events that are due (cron, data change, staleness);
3. runs the monitors whose schedule fired and carries out what they ask for;
4. steps the experiment rollouts that are due (a bandit every `update_interval`, A/B reports);
5. runs each pipeline once for its most urgent event, and rolls its new challenger out.

On Azure ML the workspace runs the schedules and the monitors, and a pass (from the scheduled workflow) acts
on what they found: a monitor run that breached its thresholds takes its Monitor's actions, once (the audit
log, in the environment's storage, remembers the run); a retraining is a new run of the pipeline's job (in the
environment it runs in; a promoted one, prod, trains nothing and requests it of the one it comes from); a
retraining job that finished is rolled out by an apply, whose canary the one rollout engine walks.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from specops.controller.events import COALESCED, DONE, FAILED, STARTED, Event, EventQueue
from specops.controller.monitors import roll_back, run_monitor
from specops.controller.triggers import data_change_events, last_training, latest_fire, schedule_events, stale_events
from specops.core.clock import utcnow
from specops.core.durations import seconds
from specops.core.files import atomic_write
from specops.errors import LockHeld, SpecopsError
from specops.monitoring.runner import MonitorResult
from specops.plan.backend import Reporter, quiet
from specops.project import Project
from specops.slo.history import record_scrapes
from specops.spec import Pipeline, SpecSet
from specops.spec.endpoints import ABRollout, BanditRollout, Endpoint
from specops.spec.monitors import Monitor
from specops.state.audit import AuditAction
from specops.state.records import PROGRESSING
from specops.state.storage import open_storage
from specops.state.store import StateStore

if TYPE_CHECKING:
    from specops.backends.azureml import AzureMLBackend
    from specops.backends.local import LocalBackend

SUBMITTED = "submitted"  # a retraining job now runs in the workspace; a later pass rolls its model out
REQUESTED = "requested"  # a promoted environment asks the one it takes its versions from to retrain
JOB_ENDED = {"Completed": AuditAction.RETRAIN_FINISHED, "Failed": AuditAction.RETRAIN_FAILED,
             "Canceled": AuditAction.RETRAIN_FAILED, "NotResponding": AuditAction.RETRAIN_FAILED,
             "NotFound": AuditAction.RETRAIN_FAILED}  # deleted, or gone with its workspace


class Controller:
    def __init__(self, project: Project, report: Reporter = quiet):
        self.project, self.report = project, report
        self.queue = EventQueue(project.root)
        self.clock_file = project.paths.controller / "clock.json"

    # -- detection -------------------------------------------------------------
    def _clock(self) -> dict[str, str]:
        """When each pipeline ("<name>") and monitor ("monitor:<name>") was last looked at."""
        return json.loads(self.clock_file.read_text()) if self.clock_file.exists() else {}

    def _save_clock(self, clock: dict[str, str]) -> None:
        atomic_write(self.clock_file, json.dumps(clock, indent=2, sort_keys=True))

    def detect(self, specs: SpecSet, now: datetime) -> list[Event]:
        """Queue every new event; returns the ones that were new."""
        clock = self._clock()
        state = StateStore(open_storage(specs), specs.env).read().resources
        found: list[Event] = []
        for pipeline in specs.of_kind(Pipeline):
            # Cron times before the controller first saw a pipeline are history, not work.
            since = datetime.fromisoformat(clock.get(pipeline.name, now.isoformat()))
            trained_at, trained_on = last_training(specs, pipeline, state)
            found += schedule_events(pipeline, since, now)
            found += data_change_events(specs, pipeline, trained_on)
            found += stale_events(pipeline, trained_at, now)
            clock[pipeline.name] = now.isoformat()
        self._save_clock(clock)
        return [event for event in found if self.queue.offer(event)]

    def run_monitors(self, specs: SpecSet, now: datetime) -> list[MonitorResult]:
        """Run each monitor whose cron fired since the last pass, once per fire time, for the window ending then.

        A monitor's clock moves only after its run, so a controller that dies mid-run
        runs that fire again on restart; the window is the same, so it does not act twice.
        """
        results = []
        for monitor in specs.of_kind(Monitor):
            key = f"monitor:{monitor.name}"
            since = datetime.fromisoformat(self._clock().get(key, now.isoformat()))  # first sight: history is not work
            fired = latest_fire(monitor.spec.schedule, since, now)
            if fired is not None:
                results += self._run_monitor(monitor, fired)
            self._save_clock({**self._clock(), key: now.isoformat()})
        return results

    def _run_monitor(self, monitor: Monitor, fired: datetime) -> list[MonitorResult]:
        try:
            result = run_monitor(self.project, monitor, fired, self.queue)
        except SpecopsError as exc:  # one broken monitor (no champion yet, say) must not stop the others
            self.report(f"monitor {monitor.name}: error: {exc}")
            return []
        drifted = f": {', '.join(result.drifted)} drifted" if result.drifted else ""
        self.report(f"monitor {monitor.name} {result.status} for the window ending {fired.isoformat()}{drifted}")
        for action in [] if result.repeat else result.actions:
            self.report(f"monitor {monitor.name}: {action}")
        return [result]

    def enqueue(self, event: Event) -> bool:
        """For monitors and people: queue a drift, performance or manual retrain."""
        return self.queue.offer(event)

    def retrain(self, pipeline: str, reason: str, detail: str = "requested on the command line") -> list[tuple[Event, str]]:
        """Queue a retraining of `pipeline` now, with its reason recorded, and run what is pending (on Azure ML:
        submit its job)."""
        specs = self.project.specs
        specs.require(Pipeline, pipeline)
        promotion = self.project.environment.promotion
        if promotion is not None:
            raise SpecopsError(f"{specs.env} trains nothing: it serves what {promotion.source} promotes; retrain there "
                               f"(specops retrain {pipeline} --env {promotion.source})")
        self.enqueue(Event(f"{reason}:{pipeline}:{utcnow().isoformat(timespec='seconds')}", pipeline, reason, detail))
        return self.run_pending(specs)

    # -- experiments -----------------------------------------------------------
    def step_experiments(self, specs: SpecSet, now: datetime) -> None:
        """A bandit's weights move every `update_interval`; an A/B test's report is brought up to date each pass."""
        from specops.rollout import Rollout

        for endpoint in specs.of_kind(Endpoint):
            strategy = endpoint.spec.rollout
            record = self.project.state.rollout(endpoint.name)
            if not isinstance(strategy, (ABRollout, BanditRollout)) or record is None or record.status != PROGRESSING:
                continue
            if isinstance(strategy, BanditRollout) and not self._due(f"bandit:{endpoint.name}", strategy.update_interval, now):
                continue
            try:
                Rollout(self.project, endpoint.name).step()
            except SpecopsError as exc:
                self.report(f"{endpoint.key}: {exc}")

    def _due(self, key: str, interval: str, now: datetime) -> bool:
        clock = self._clock()
        last = clock.get(key)
        if last is not None and (now - datetime.fromisoformat(last)).total_seconds() < seconds(interval):
            return False
        self._save_clock({**clock, key: now.isoformat()})
        return True

    # -- running ---------------------------------------------------------------
    def run_pending(self, specs: SpecSet) -> list[tuple[Event, str]]:
        """Run each pipeline once, for its most urgent pending event; the others ride along."""
        outcomes: list[tuple[Event, str]] = []
        by_pipeline: dict[str, list[Event]] = {}
        for event in self.queue.pending():
            by_pipeline.setdefault(event.pipeline, []).append(event)
        for name, events in by_pipeline.items():
            pipeline = specs.get(Pipeline, name)
            if pipeline is None:
                for event in events:
                    self.queue.mark(event, FAILED, f"no Pipeline named {name!r}")
                    outcomes.append((event, FAILED))
                continue
            try:
                status = self._retrain(pipeline, events[0])
            except LockHeld as exc:
                self.report(f"{name}: waiting, {exc}")
                continue
            outcomes.append((events[0], status))
            rode = COALESCED if status in (DONE, SUBMITTED, REQUESTED) else FAILED
            for rider in events[1:]:
                self.queue.mark(rider, rode, f"ran with {events[0].id}")
                outcomes.append((rider, rode))
        return outcomes

    def _retrain(self, pipeline: Pipeline, event: Event) -> str:
        if self.project.environment.backend == "azureml":
            return self._submit(pipeline, event)
        project = self.project
        with project.lock(f"controller retrain {pipeline.name} ({event.reason})"):
            self.queue.mark(event, STARTED)
            detail = {"pipeline": pipeline.name, "reason": event.reason, "event": event.id}
            project.audit.record(AuditAction.RETRAIN_STARTED, pipeline.key, **detail, detail=event.detail)
            self.report(f"{pipeline.key}: retraining ({event.reason}: {event.detail})")
            try:
                outputs = self._local_backend().run_pipeline(pipeline, project.specs, self.report, retrain_reason=event.reason)
            except SpecopsError as exc:
                self.queue.mark(event, FAILED, str(exc))
                project.audit.record(AuditAction.RETRAIN_FAILED, pipeline.key, **detail, error=str(exc))
                return FAILED
            self._commit_training(pipeline, outputs, detail)
            self.queue.mark(event, DONE)
            self._roll_out(pipeline)
            return DONE

    def _local_backend(self) -> LocalBackend:
        """The backend that runs a pipeline here and now (an azureml environment's retraining is `_submit`)."""
        from specops.backends.local import LocalBackend

        backend = self.project.backend
        if not isinstance(backend, LocalBackend):
            raise SpecopsError(f"{self.project.env!r} uses the {backend.name} backend, not local")
        return backend

    def _commit_training(self, pipeline: Pipeline, outputs: dict[str, Any], detail: dict[str, str]) -> None:
        """The pipeline ran to completion: state says so (its age for `stale` starts again), through the one commit path."""
        project = self.project
        resource = next(r for r in project.backend.desired(project.specs) if r.key == pipeline.key)
        project.commit(pipeline.key, resource.stored_fields, outputs, AuditAction.RETRAIN_FINISHED, **detail)

    def _roll_out(self, pipeline: Pipeline) -> None:
        """The new challenger goes out through each running endpoint that serves the pipeline's model by alias."""
        from specops.backends import local_endpoint
        from specops.serving.daemon import server_info

        project = self.project
        for endpoint in project.specs.of_kind(Endpoint):
            serves = any(d.model_ref.name == pipeline.spec.model_name and d.model_ref.alias for d in endpoint.spec.deployments)
            if not serves or server_info(project.paths, endpoint.name) is None:
                continue
            applied = project.applied(endpoint.key)
            try:
                outputs = local_endpoint.deploy(project, endpoint, self.report)
            except SpecopsError as exc:  # a rolled-back challenger: recorded as an incident, the loop goes on
                self.report(f"{endpoint.key}: {exc}")
                continue
            if applied is not None:  # what the endpoint now serves, committed like any apply
                project.commit(endpoint.key, applied.fields, outputs, AuditAction.UPDATE, reason="challenger rolled out")

    # -- Azure ML: the workspace runs, the controller acts ---------------------------------
    def _submit(self, pipeline: Pipeline, event: Event) -> str:
        project = self.project
        detail = {"pipeline": pipeline.name, "reason": event.reason, "event": event.id}
        promotion = project.environment.promotion
        if promotion is not None:  # its credentials reach its own workspace only: the source's pass submits the job
            project.audit.record(AuditAction.RETRAIN_REQUESTED, pipeline.key, **detail, source=promotion.source)
            self.report(f"{pipeline.key}: retraining ({event.reason}: {event.detail}) requested in {promotion.source}: "
                        f"{project.env} trains nothing")
            self.queue.mark(event, DONE, f"requested in {promotion.source}")
            return REQUESTED
        try:
            job = _workspace(project).submit_retraining(project.specs, pipeline.name, event.reason)
        except SpecopsError as exc:
            self.queue.mark(event, FAILED, str(exc))
            project.audit.record(AuditAction.RETRAIN_FAILED, pipeline.key, **detail, error=str(exc))
            return FAILED
        project.audit.record(AuditAction.RETRAIN_STARTED, pipeline.key, **detail, job=job, detail=event.detail)
        self.report(f"{pipeline.key}: retraining ({event.reason}: {event.detail}): job {job} submitted")
        self.queue.mark(event, DONE, f"job {job}")
        return SUBMITTED

    def follow_jobs(self) -> list[tuple[str, str]]:
        """Each retraining job submitted here and not yet ended. A finished one is rolled out by an apply (its
        challenger walks the canary) and only then audited `retrain_finished`: an apply that fails (the lock held,
        Azure down) is tried again next pass, and a rolled-back canary leaves a plan with nothing to do. A failed,
        canceled or vanished job is audited `retrain_failed`. Returns (job, status) for those it recorded."""
        project = self.project
        backend = _workspace(project)
        entries = [e for e in project.audit.entries() if e.get("env") == project.env and "job" in e]
        ended = {e["job"] for e in entries if e["action"] != AuditAction.RETRAIN_STARTED}
        done: list[tuple[str, str]] = []
        applied: bool | None = None  # not tried yet this pass
        for started in [e for e in entries if e["action"] == AuditAction.RETRAIN_STARTED and e["job"] not in ended]:
            status = backend.job_status(project.specs, started["pipeline"], started["job"])
            if status not in JOB_ENDED:
                continue
            if status == "Completed":
                applied = self._apply_new_versions() if applied is None else applied
                if not applied:
                    continue
            detail = {k: started[k] for k in ("pipeline", "reason", "event", "job") if k in started}
            project.audit.record(JOB_ENDED[status], started["resource"], **detail, status=status)
            self.report(f"{started['resource']}: job {started['job']} {status}")
            done.append((started["job"], status))
        return done

    def _apply_new_versions(self) -> bool:
        """The registered challenger goes out through the endpoints serving its alias: an apply of the specs."""
        try:
            self.project.apply(report=self.report)
        except SpecopsError as exc:  # LockHeld included: the next pass tries again
            self.report(f"apply: {exc}")
            return False
        return True

    def act_on_monitor_runs(self, specs: SpecSet, now: datetime) -> None:
        """Each monitor run the workspace made since the last pass that breached its thresholds: its alert audited,
        then its Monitor's actions for the signals that breached (a retraining queued, a rollback, a webhook).
        Runs made before a monitor was first looked at are history, not work; a run is acted on once (the audit
        log in the environment's storage remembers it, and the time of each look is kept there too)."""
        from specops.monitoring.runner import RollbackRequest, notify
        from specops.spec.monitors import alert_actions

        project = self.project
        backend = _workspace(project)
        looked = self._looked_at(now)
        acted = {e.get("run") for e in project.audit.entries()
                 if e.get("env") == project.env and e["action"] == AuditAction.DRIFT_ALERT}
        for monitor in specs.of_kind(Monitor):
            since = looked.get(monitor.name)
            if since is None:  # first sight
                continue
            for run in backend.monitor_runs(specs, monitor.name):
                if not run.breached or run.name in acted or (run.created is not None and run.created <= since):
                    continue
                actions = sorted({a for signal in run.breached for a in alert_actions(monitor, signal)})
                pipeline = monitor.spec.actions.retrain
                evidence = {"monitor": monitor.name, "run": run.name, "signals": list(run.breached)}
                project.audit.record(AuditAction.DRIFT_ALERT, monitor.key, **evidence,
                                     **({"pipeline": pipeline} if pipeline else {}))
                self.report(f"monitor {monitor.name}: run {run.name} breached {', '.join(run.breached)}: "
                            f"{', '.join(actions) or 'no action'}")
                if "retrain" in actions and pipeline:
                    self.enqueue(Event(f"drift:{pipeline}:{run.name}", pipeline, "drift", f"monitor run {run.name}"))
                if "rollback" in actions and monitor.spec.actions.rollback:
                    self.report(roll_back(project, RollbackRequest(monitor.spec.target.endpoint, "drift", evidence)))
                if "notify" in actions and monitor.spec.actions.notify:
                    self.report(notify(monitor.spec.actions.notify, {"monitor": monitor.name, **evidence,
                                                                     "message": run.message}))

    def _looked_at(self, now: datetime) -> dict[str, datetime]:
        """When each monitor was last looked at (absent: never), and now recorded as the latest look."""
        names = [m.name for m in self.project.specs.of_kind(Monitor)]
        before: dict[str, str] = {}

        def look(text: str | None) -> str:
            before.update(json.loads(text) if text else {})
            return json.dumps({**before, **{name: now.isoformat() for name in names}}, indent=2, sort_keys=True)

        self.project.storage.update(f"controller/{self.project.env}.json", look)
        return {name: datetime.fromisoformat(when) for name, when in before.items()}

    # -- the loop --------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[tuple[Event, str]]:
        self.project = self.project.reloaded()  # a spec changed since the last pass is seen now
        specs = self.project.specs
        now = now or utcnow()
        if self.project.environment.backend == "azureml":
            if self.project.environment.state is None:
                self.report(f"{specs.env}'s records are in .specops/ on this machine: a CI runner forgets what the "
                            "controller acted on (set spec.environments.<env>.state)")
            self.follow_jobs()
            self.act_on_monitor_runs(specs, now)
            return self.run_pending(specs)
        for line in record_scrapes(specs):
            self.report(line)
        for event in self.detect(specs, now):
            self.report(f"queued {event.id}: {event.detail}")
        self.run_monitors(specs, now)
        self.step_experiments(specs, now)
        return self.run_pending(specs)

    def run_forever(self, interval_s: float, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except SpecopsError as exc:  # a broken spec pauses the controller; it must not kill it
                self.report(f"error: {exc}")
            stop.wait(interval_s)


def _workspace(project: Project) -> AzureMLBackend:
    from specops.backends.azureml import AzureMLBackend

    backend = project.backend
    if not isinstance(backend, AzureMLBackend):
        raise SpecopsError(f"{project.env!r} uses the {backend.name} backend, not azureml")
    return backend
