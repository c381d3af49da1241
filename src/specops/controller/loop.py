"""The controller loop: detect what is due, run the monitors whose schedule fired, then run each
pipeline once for its most urgent event (a monitor's drift alert is one, in the same pass)."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from specops.apply.audit import AuditLog
from specops.apply.lock import apply_lock
from specops.apply.state import StateStore
from specops.core.files import atomic_write
from specops.backends.base import Reporter, quiet
from specops.backends.local import LocalBackend
from specops.controller.events import COALESCED, DONE, FAILED, STARTED, Event, EventQueue
from specops.controller.triggers import data_change_events, last_training, latest_fire, schedule_events, stale_events
from specops.errors import LockHeld, SpecopsError
from specops.core.paths import STATE_DIR
from specops.monitoring.runner import MonitorResult, run_monitor
from specops.spec import Pipeline, SpecSet, load_specs
from specops.spec.endpoints import Endpoint
from specops.spec.monitors import Monitor


class Controller:
    def __init__(self, root: Path | str, env: str | None = None, report: Reporter = quiet):
        self.root, self.env, self.report = Path(root).resolve(), env, report
        self.queue = EventQueue(self.root)
        self.clock_file = self.root / STATE_DIR / "controller" / "clock.json"

    # -- detection -------------------------------------------------------------
    def _clock(self) -> dict[str, str]:
        """When each pipeline ("<name>") and monitor ("monitor:<name>") was last looked at."""
        return json.loads(self.clock_file.read_text()) if self.clock_file.exists() else {}

    def _save_clock(self, clock: dict[str, str]) -> None:
        atomic_write(self.clock_file, json.dumps(clock, indent=2, sort_keys=True))

    def detect(self, specs: SpecSet, now: datetime) -> list[Event]:
        """Queue every new event; returns the ones that were new."""
        clock = self._clock()
        state = StateStore(specs.root, specs.env).resources
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
                results += self._run_monitor(specs, monitor, fired)
            self._save_clock({**self._clock(), key: now.isoformat()})
        return results

    def _run_monitor(self, specs: SpecSet, monitor: Monitor, fired: datetime) -> list[MonitorResult]:
        try:
            result = run_monitor(specs, monitor, fired)
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
                status = self._retrain(specs, pipeline, events[0])
            except LockHeld as exc:
                self.report(f"{name}: waiting, {exc}")
                continue
            outcomes.append((events[0], status))
            for rider in events[1:]:
                self.queue.mark(rider, COALESCED if status == DONE else FAILED, f"ran with {events[0].id}")
                outcomes.append((rider, COALESCED if status == DONE else FAILED))
        return outcomes

    def _retrain(self, specs: SpecSet, pipeline: Pipeline, event: Event) -> str:
        audit, backend = AuditLog(specs.root), LocalBackend(specs.root)
        with apply_lock(specs.root, f"controller retrain {pipeline.name} ({event.reason})"):
            self.queue.mark(event, STARTED)
            audit.record(env=specs.env, action="retrain_started", resource=pipeline.key, pipeline=pipeline.name,
                         reason=event.reason, event=event.id, detail=event.detail)
            self.report(f"{pipeline.key}: retraining ({event.reason}: {event.detail})")
            try:
                outputs = backend.run_pipeline(pipeline, specs, self.report, retrain_reason=event.reason)
            except SpecopsError as exc:
                self.queue.mark(event, FAILED, str(exc))
                audit.record(env=specs.env, action="retrain_failed", resource=pipeline.key, pipeline=pipeline.name,
                             reason=event.reason, event=event.id, error=str(exc))
                return FAILED
            self._record_training(specs, pipeline, outputs)
            audit.record(env=specs.env, action="retrain_finished", resource=pipeline.key, pipeline=pipeline.name,
                         reason=event.reason, event=event.id, outputs=outputs)
            self.queue.mark(event, DONE)
            self._roll_out(specs, pipeline)
            return DONE

    def _roll_out(self, specs: SpecSet, pipeline: Pipeline) -> None:
        """The new challenger goes out through each running endpoint that serves the pipeline's model by alias."""
        from specops.backends import local_endpoint
        from specops.serving.daemon import server_info

        for endpoint in specs.of_kind(Endpoint):
            serves = any(d.model_ref.name == pipeline.spec.model_name and d.model_ref.alias for d in endpoint.spec.deployments)
            if serves and server_info(specs.root, endpoint.name) is not None:
                try:
                    local_endpoint.deploy(specs.root, endpoint, specs, self.report)
                except SpecopsError as exc:  # a rolled-back challenger: recorded as an incident, the loop goes on
                    self.report(f"{endpoint.key}: {exc}")

    def _record_training(self, specs: SpecSet, pipeline: Pipeline, outputs: dict[str, Any]) -> None:
        """The pipeline ran to completion: state says so (its age for `stale` starts again)."""
        store = StateStore(specs.root, specs.env)
        resource = next(r for r in LocalBackend(specs.root).desired(specs) if r.key == pipeline.key)
        store.put(pipeline.key, resource.stored_fields, outputs)

    # -- the loop --------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[tuple[Event, str]]:
        specs = load_specs(self.root, self.env)
        backend = specs.project.spec.environments[specs.env].backend
        if backend != "local":
            raise SpecopsError(f"the controller drives local environments; {specs.env!r} uses {backend}, where schedules run in the workspace")
        now = now or datetime.now(timezone.utc)
        for event in self.detect(specs, now):
            self.report(f"queued {event.id}: {event.detail}")
        self.run_monitors(specs, now)
        return self.run_pending(specs)

    def run_forever(self, interval_s: float, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except SpecopsError as exc:  # a broken spec pauses the controller; it must not kill it
                self.report(f"error: {exc}")
            stop.wait(interval_s)
