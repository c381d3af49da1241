"""`Rollout(project, endpoint)`: drive one endpoint's rollout, step by step, on any backend.

Every transition is committed to the rollout record in the environment's
state first and then carried out; carrying out (routing traffic, moving the
champion) is idempotent, so `resume` after a crash redoes the step the record
names. The platform is behind two ports (specops.rollout.ports), which the
environment's backend hands out: the local server and Azure ML run this same
state machine, incidents and audit trail included.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from specops.core.clock import epoch, now
from specops.core.durations import seconds as duration_seconds
from specops.errors import SpecopsError
from specops.rollout import analysis as an
from specops.registry import CHAMPION
from specops.rollout.incident import new_incident_id, write_incident
from specops.rollout.ports import Observed, RolloutPorts, Window
from specops.rollout.strategies import rewards, thompson_weights
from specops.serving.config import find_endpoint
from specops.serving.inference_log import read_log
from specops.state.audit import AuditAction
from specops.state.records import ABORTED, ACTIVE, DEGRADED, HEALTHY, PAUSED, PROGRESSING, RolloutRecord
from specops.state.store import RecordChanged
from specops.spec.endpoints import ABRollout, BanditRollout, BlueGreenRollout, CanaryRollout, Deployment, LoadTest, ModelRef
from specops.spec.kinds import Gate

if TYPE_CHECKING:
    from specops.project import Project

POLL_S = 0.1  # how often a pause looks for a promote/abort from another process
PREVIEW_MIRROR_PERCENT = 50  # blue-green: the idle colour sees this share of live requests, answers discarded
# Blue-green phases, kept in the record's `step` so `resume` knows what is done.
BG_LOAD_TEST, BG_ANALYSIS, BG_SWITCHED = 0, 1, 2
S = TypeVar("S", CanaryRollout, BlueGreenRollout, ABRollout, BanditRollout)


class Rollout:
    def __init__(self, project: Project, endpoint: str, max_wait_s: float | None = None, *, ports: RolloutPorts | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        """`ports` default to what the environment's backend hands out; `sleep` and `clock` are what pauses
        and waits use (tests give fakes)."""
        self.project = project
        self.specs = project.specs
        self.state_dir = project.paths.endpoint(endpoint)
        self.name = endpoint
        self.endpoint = find_endpoint(self.specs, endpoint)
        if self.endpoint.spec.rollout is None:
            raise SpecopsError(f"Endpoint {endpoint!r} declares no spec.rollout strategy")
        self.strategy = self.endpoint.spec.rollout
        resolved: RolloutPorts = ports or project.backend.rollout_ports(endpoint)
        self.router, self.metrics, self.load_tester = resolved.router, resolved.metrics, resolved.load_tester
        self.max_wait_s = resolved.max_wait_s if max_wait_s is None else max_wait_s
        self.sleep, self.clock = sleep, clock
        self.audit = project.audit

    def _as(self, kind: type[S]) -> S:
        """The strategy as the kind a strategy-specific step knows it is (the dispatch in `step` chose it)."""
        assert isinstance(self.strategy, kind), f"{type(self.strategy).__name__} is not {kind.__name__}"
        return self.strategy

    # --- reading state ---------------------------------------------------------------------

    def record(self) -> RolloutRecord:
        record = self.project.state.rollout(self.name)
        if record is None:
            raise SpecopsError(f"no rollout recorded for endpoint {self.name!r}; start one first")
        return record

    def status(self) -> RolloutRecord:
        """The record, after noticing a reverted spec: a Degraded endpoint is Healthy again once its spec is."""
        record = self.record()
        if record.status == DEGRADED:
            why = self._reverted(record)
            if why:
                self._recovered(record, why)
        return record

    def _reverted(self, record: RolloutRecord) -> str | None:
        """Why the rolled-back version is no longer asked for, or None while it still is.

        A pinned deployment (`model@3`) is asked for while the spec sends it traffic; an aliased one
        (`model@challenger`, the champion/challenger loop) while its alias still points at that version.
        """
        deployment = self.endpoint.spec.deployment(record.canary)
        if deployment is None:
            return "the spec no longer declares the rolled-back deployment"
        ref = deployment.model_ref
        if ref.alias is None:
            if ref.version != record.canary_version or not self.endpoint.spec.traffic.get(record.canary, 0):
                return "the spec no longer sends traffic to the rolled-back deployment"
            return None
        from specops.registry import version_by_alias

        current = version_by_alias(self.project.registry, ref.name, ref.alias)  # a deleted alias asks for nothing
        if current is not None and str(current.version) == record.canary_version:
            return None
        return f"{ref.name}@{ref.alias} no longer points at version {record.canary_version}"

    # --- starting and stepping --------------------------------------------------------------

    def start(self, canary: str, stable: str | None = None, target: dict[str, int] | None = None) -> RolloutRecord:
        """A new rollout of `canary` from `stable` (by default the deployment taking most traffic).

        `target` is the traffic the rollout ends at (a canary step reaching the canary's share in it ends the
        walk); without one it ends with all traffic on the canary, and the caller settles the spec's weights."""
        existing = self.project.state.rollout(self.name)
        if existing is not None and existing.status in ACTIVE:
            raise SpecopsError(f"a rollout of {self.name} is already {existing.status} ({existing.stable} -> {existing.canary}); "
                               f"promote or abort it first")
        if existing is not None and existing.status == DEGRADED:
            self.status()  # a reverted spec closes the old incident before a new rollout opens
        versions, live, mirror = self.router.versions(), self.router.traffic(), self.router.mirror()
        stable = stable or max(live, key=live.__getitem__)
        for name in (canary, stable):
            if name not in versions:
                raise SpecopsError(f"no deployment named {name!r} on endpoint {self.name} (deployments: {', '.join(versions)})")
        if canary == stable:
            raise SpecopsError(f"the canary and the stable deployment are both {canary!r}")
        model = ModelRef.parse(self._deployment(canary).model).name
        weights, shadows = self._initial_weights(stable, live), {k: v for k, v in mirror.items() if k != canary}
        record = RolloutRecord(endpoint=self.name, strategy=self.strategy.strategy, stable=stable, canary=canary, model=model,
                               stable_version=versions[stable], canary_version=versions[canary],
                               weights=weights, mirror=self._initial_mirror(canary, shadows),
                               revision=existing.revision if existing else 0)
        record.extra["baseline"] = dict(weights)  # what a canary step splits the rest by, and a rollback restores
        record.extra["baseline_mirror"] = shadows  # shadows stay shadows
        if target:
            record.extra["target"] = dict(target)
        record.log("started", stable=stable, canary=canary)
        if record.weights != live or record.mirror != mirror:
            self._move_traffic(record)
        else:
            self._save(record)  # traffic is where the record says: nothing to move
        self._new_window(record)  # analysis and A/B reports count from here
        self.audit.record(AuditAction.ROLLOUT_STARTED, f"Endpoint/{self.name}", strategy=record.strategy,
                          stable=stable, canary=canary, version=record.canary_version)
        return record

    def _initial_weights(self, stable: str, live: dict[str, int]) -> dict[str, int]:
        # A/B and bandit arms are the deployments the spec sends live traffic to.
        if isinstance(self.strategy, (ABRollout, BanditRollout)):
            return {name: share for name, share in self.endpoint.spec.traffic.items() if share > 0}
        if live.get(stable) and sum(live.values()) == 100:
            return dict(live)  # every deployment serving keeps its share until a canary step splits it
        return {stable: 100}

    def _initial_mirror(self, canary: str, shadows: dict[str, int]) -> dict[str, int]:
        return {canary: PREVIEW_MIRROR_PERCENT} if isinstance(self.strategy, BlueGreenRollout) else dict(shadows)

    def run(self) -> RolloutRecord:
        """Step until the rollout pauses, finishes or rolls back (canary and blue-green; one step otherwise).

        A person's promote or abort from another process wins: this driver stops and returns their record.
        """
        record = self.record()
        try:
            for _ in range(self._step_bound()):
                record = self.step()
                if record.status != PROGRESSING or isinstance(self.strategy, (ABRollout, BanditRollout)):
                    break
        except RecordChanged:
            return self.record()
        return record

    def _step_bound(self) -> int:
        return len(self.strategy.steps) + 2 if isinstance(self.strategy, CanaryRollout) else BG_SWITCHED + 2

    def step(self) -> RolloutRecord:
        record = self.record()
        if record.status != PROGRESSING:
            raise SpecopsError(f"the rollout of {self.name} is {record.status}, not Progressing ({record.message or 'nothing to do'})")
        if record.extra.get("promoting"):
            return self._promote(record, record.extra["promoting"])
        handler = {CanaryRollout: self._canary_step, BlueGreenRollout: self._blue_green_step,
                   ABRollout: self._ab_step, BanditRollout: self._bandit_step}[type(self.strategy)]
        return handler(record)

    def resume(self) -> RolloutRecord:
        """Pick up after a restart or a pause: finish an abort, or re-assert the recorded traffic and go on."""
        record = self.record()
        if record.status == ABORTED:
            return self._finish_rollback(record, record.message, None)
        if record.status in (HEALTHY, DEGRADED):
            return self.status()
        record.status, record.message = PROGRESSING, ""
        record.log("resumed", step=record.step)
        self._move_traffic(record)  # a restarted server begins at the spec's weights: put the rollout's back
        return self.run()

    # --- canary -----------------------------------------------------------------------------

    def _canary_step(self, record: RolloutRecord) -> RolloutRecord:
        steps = self._as(CanaryRollout).steps
        if record.step >= len(steps):
            return self._promote(record, "all steps passed")
        step = steps[record.step]
        target = record.extra.get("target", {})
        if step.weight is not None and target and step.weight >= target.get(record.canary, 100):
            record.log("target reached", step=record.step, canary=step.weight, skipped=len(steps) - record.step - 1)
            return self._promote(record, f"weight {step.weight} reaches the declared {target.get(record.canary)}")
        if step.weight is not None:
            baseline = {k: v for k, v in record.extra.get("baseline", {record.stable: 100}).items() if k != record.canary}
            record.weights = canary_split(baseline or {record.stable: 100}, record.canary, step.weight)
            record.log("weight", step=record.step, canary=step.weight)
            self._move_traffic(record)
            self._new_window(record)
        elif step.pause is not None and step.pause.duration is None:
            record.step += 1  # `resume` goes on past the pause
            return self._pause(record, f"paused at step {record.step - 1} until `specops rollout resume` or `promote`")
        elif step.pause is not None and step.pause.duration is not None:
            if not self._wait(duration_seconds(step.pause.duration)):
                return self.record()  # someone promoted or aborted meanwhile
        elif step.load_test is not None and self.load_tester is None:
            record.log("skipped", step=record.step, reason="load tests run on the local backend only")
        else:
            what = f"analysis {step.analysis}" if step.analysis is not None else "load test"
            if step.analysis is not None:
                self._wait_for_samples(record, record.canary)
                result = self._analyse(record, step.analysis)
            else:
                assert step.load_test is not None  # a step is exactly one of weight, pause, analysis, load_test
                result = self._load_test(record, step.load_test)
            if result["phase"] == an.FAILED:
                return self.abort(trigger=f"{what} failed at step {record.step}", analysis=result)
            if result["phase"] == an.INCONCLUSIVE:
                return self._pause(record, f"{what} inconclusive at step {record.step}: {_why(result)}; "
                                           f"`specops rollout resume` re-runs it")
        record.step += 1
        self._save(record)
        return record

    def _wait(self, seconds: float) -> bool:
        """Sleep, looking for another process's promote or abort; False when the rollout stopped progressing."""
        deadline = self.clock() + seconds
        while self.clock() < deadline:
            self.sleep(min(max(POLL_S, seconds / 100), max(deadline - self.clock(), 0)))
            current = self.record()
            if current.status != PROGRESSING or current.extra.get("promoting"):
                return False
        return True

    # --- analysis ---------------------------------------------------------------------------

    def _new_window(self, record: RolloutRecord) -> None:
        record.window = self.metrics.mark()
        self._save(record)

    def _arm(self, window: Window, deployment: str, shadow: bool = False) -> an.Arm:
        observed = self.metrics.observe(window, deployment, shadow)
        return an.Arm(deployment, observed.traffic, observed.labelled, observed.correct, observed.errors)

    def _analyse(self, record: RolloutRecord, gate_name: str | None, shadow: bool = False,
                 arms: tuple[tuple[str, bool], tuple[str, bool]] | None = None) -> dict[str, Any]:
        """Analysis over the window; `arms` is ((new, mirrored?), (baseline, mirrored?)), by default canary vs stable.

        Stable is every other deployment serving (their traffic combined), as the canary split shares it.
        """
        new, baseline = [self._arm(record.window, name, is_shadow)
                         for name, is_shadow in (arms or ((record.canary, shadow), (record.stable, False)))]
        if arms is None:
            others = [name for name, weight in record.weights.items() if weight and name not in (record.canary, record.stable)]
            baseline = an.combined([baseline, *(self._arm(record.window, name) for name in others)])
        gate = self.specs.get(Gate, gate_name) if gate_name else None
        result = an.analyse(new, baseline, self.strategy, gate, an.slo_budgets(self.specs, gate),  # SLO freeze
                            measured=self.metrics.measures)
        result["step"] = record.step
        record.analyses.append(result)
        record.log("analysis", step=record.step, phase=result["phase"], gate=gate_name)
        self._save(record)
        return result

    def _load_test(self, record: RolloutRecord, spec: LoadTest) -> dict[str, Any]:
        """A load test aimed at the canary, judged as an analysis run and recorded with the others."""
        if self.load_tester is None:
            raise SpecopsError(f"endpoint {self.name}: load tests run on the local backend only")
        measured, record.window = self.load_tester.run(record.window, record.canary, spec)
        result = an.load_test_analysis(measured, self.strategy)
        result["step"] = record.step
        record.analyses.append(result)
        record.log("load test", step=record.step, phase=result["phase"], requests=measured.requests,
                   failures=measured.failures, p95_ms=measured.p95)
        self._save(record)
        return result

    # --- blue-green -------------------------------------------------------------------------

    def _blue_green_step(self, record: RolloutRecord) -> RolloutRecord:
        """Load-test the idle colour, analyse it on the requests mirrored to it since the start, then switch (or wait
        for a person); after the switch, the post-promotion analysis watches it on live traffic."""
        if record.step == BG_SWITCHED:
            return self._post_promotion_step(record)
        strategy = self._as(BlueGreenRollout)
        load_test = strategy.pre_promotion_load_test
        if load_test is not None and record.step < BG_ANALYSIS:
            result = self._load_test(record, load_test)
            if result["phase"] == an.FAILED:
                return self.abort(trigger="pre-promotion load test failed on the preview", analysis=result)
            if result["phase"] == an.INCONCLUSIVE:
                return self._pause(record, f"pre-promotion load test inconclusive: {_why(result)}; `specops rollout resume` re-runs it")
            record.step = BG_ANALYSIS
            self._save(record)
            return record
        self._wait_for_samples(record, record.canary, shadow=True)
        result = self._analyse(record, strategy.pre_promotion_analysis, shadow=True)
        if result["phase"] == an.FAILED:
            return self.abort(trigger="pre-promotion analysis failed on the preview", analysis=result)
        if result["phase"] == an.INCONCLUSIVE:
            return self._pause(record, f"pre-promotion analysis inconclusive: {_why(result)}; `specops rollout resume` re-runs it")
        if not strategy.auto_promotion_enabled:
            return self._pause(record, "the preview passed analysis; `specops rollout promote` switches traffic to it")
        return self._promote(record, "pre-promotion analysis passed (auto-promotion)")

    def _wait_for_samples(self, record: RolloutRecord, deployment: str, shadow: bool = False) -> None:
        """Until `deployment` answered min_samples in the window (its mirrored copies if `shadow`), or max_wait_s."""
        deadline = self.clock() + self.max_wait_s
        while self.clock() < deadline:
            if self._has_samples(self.metrics.observe(record.window, deployment, shadow)):
                return
            if not self._wait(min(self.metrics.poll_s, deadline - self.clock())):
                return

    def _has_samples(self, seen: Observed) -> bool:
        """min_samples answers, and as many labels when the regression check judges labels (they come after answers)."""
        needed, metric = self.strategy.min_samples, self.strategy.rollback.metric
        if seen.traffic.requests < needed:
            return False
        measures = self.metrics.measures
        if metric not in an.FEEDBACK_METRICS or (measures is not None and metric not in measures):
            return True
        return (seen.errors.count if metric == "mae" else seen.labelled) >= needed

    def _post_promotion_step(self, record: RolloutRecord) -> RolloutRecord:
        """The new stable on live traffic against the previous colour on mirrored requests; Failed switches back."""
        previous = self._previous(record)["stable"]
        self._wait_for_samples(record, previous, shadow=True)
        result = self._analyse(record, self._as(BlueGreenRollout).post_promotion_analysis,
                               arms=((record.stable, False), (previous, True)))
        if result["phase"] == an.FAILED:
            return self._switch_back(record, f"post-promotion analysis failed on {record.stable}", result)
        if result["phase"] == an.INCONCLUSIVE:
            return self._pause(record, f"post-promotion analysis inconclusive: {_why(result)}; `specops rollout resume` re-runs "
                                       f"it, `promote` accepts {record.stable}, `abort` switches back to {previous}")
        return self._settle(record, "post-promotion analysis passed")

    def _settle(self, record: RolloutRecord, reason: str) -> RolloutRecord:
        """The switch stands: stop mirroring to the previous colour; the rollout is Healthy."""
        record.mirror = dict(record.extra.get("baseline_mirror", {}))
        record.status, record.message = HEALTHY, reason
        record.log("settled", reason=reason)
        self._move_traffic(record)
        return record

    # --- A/B and bandit ---------------------------------------------------------------------

    def _ab_step(self, record: RolloutRecord) -> RolloutRecord:
        """Report each arm's metrics since the start; pause for a decision once the experiment's time is up."""
        since = record.window["time"]
        record.extra["arms"] = {name: self._arm(record.window, name).metrics() for name in record.weights}
        record.extra["reported_at"] = now()
        duration = self._as(ABRollout).duration
        if duration and self.clock() - since >= duration_seconds(duration):
            return self._pause(record, "the A/B experiment is over: promote the winner or abort")
        self._save(record)
        return record

    def _bandit_step(self, record: RolloutRecord) -> RolloutRecord:
        """One update (the controller steps a bandit every update_interval): weights from the posterior so far."""
        strategy = self._as(BanditRollout)
        if strategy.reward.metric not in an.FEEDBACK_METRICS:
            raise SpecopsError(f"bandit reward {strategy.reward.metric!r} cannot be measured per request "
                               f"(available: {', '.join(an.FEEDBACK_METRICS)})")
        records = read_log(self.state_dir, since=record.window["time"])
        counts = rewards(records, list(record.weights), record.window["time"], strategy.reward.goal)
        record.weights = thompson_weights(counts, strategy.floor)
        record.extra["rewards"] = counts
        record.log("bandit", weights=record.weights)
        self._move_traffic(record)
        return record

    # --- promotion ----------------------------------------------------------------------------

    def promote(self) -> RolloutRecord:
        """All traffic to the canary now (Argo's promote --full); it becomes stable and the model champion."""
        record = self.record()
        if record.status not in (PROGRESSING, PAUSED):
            raise SpecopsError(f"nothing to promote: the rollout of {self.name} is {record.status}")
        if self._switched(record):  # already switched: promote skips the rest of the post-promotion analysis
            return self._settle(record, "post-promotion analysis skipped by hand")
        record = self._promote(record, "promoted by hand")
        return self.run() if self._switched(record) else record  # the post-promotion analysis, on this driver

    def _promote(self, record: RolloutRecord, reason: str) -> RolloutRecord:
        record.status, record.extra["promoting"] = PROGRESSING, reason  # a crash from here on re-runs this method
        analysis = self.strategy.post_promotion_analysis if isinstance(self.strategy, BlueGreenRollout) else None
        watch = analysis is not None
        # Watched: the previous colour keeps a mirrored share, the baseline the post-promotion analysis compares with.
        record.weights = dict(record.extra.get("target") or {record.canary: 100})
        record.mirror = {record.stable: PREVIEW_MIRROR_PERCENT} if watch else dict(record.extra.get("baseline_mirror", {}))
        self._move_traffic(record)
        self._set_champion(record.model, record.canary_version)
        record.previous = {"stable": record.stable, "stable_version": record.stable_version}
        record.stable, record.stable_version = record.canary, record.canary_version
        record.status, record.message, record.finished_at = HEALTHY, reason, now()
        record.extra.pop("promoting")
        record.log("promoted", reason=reason, version=record.canary_version)
        if watch:  # Argo's blue-green: Progressing until the post-promotion analysis passes
            record.status, record.step = PROGRESSING, BG_SWITCHED
            record.message = f"{reason}; switched, post-promotion analysis {analysis} on live traffic"
            record.window = self.metrics.mark()
        self._save(record)
        self.audit.record(AuditAction.PROMOTE, f"Endpoint/{self.name}", reason=reason,
                          outputs={"model": record.model, "version": record.canary_version, "aliases": [CHAMPION]})
        return record

    # --- rollback -------------------------------------------------------------------------------

    def abort(self, trigger: str = "aborted by hand", analysis: dict[str, Any] | None = None) -> RolloutRecord:
        """All traffic back to stable at once, then the incident record and audit entries."""
        record = self.record()
        if record.status not in (PROGRESSING, PAUSED, ABORTED):
            raise SpecopsError(f"nothing to abort: the rollout of {self.name} is {record.status}")
        if self._switched(record):
            return self._switch_back(record, trigger, analysis)
        return self._rollback(record, trigger, analysis)

    def undo(self) -> RolloutRecord:
        """Back to the previous stable deployment without analysis, within rollback_window of a promotion."""
        record = self.record()
        if record.status != HEALTHY or record.previous is None:
            raise SpecopsError(f"nothing to undo: the rollout of {self.name} is {record.status} and was not promoted")
        elapsed = self.clock() - epoch(record.finished_at)
        allowed = duration_seconds(self.strategy.rollback_window)
        if elapsed > allowed:
            raise SpecopsError(f"the promotion was {elapsed:.0f}s ago, past rollback_window={self.strategy.rollback_window}; "
                               f"roll forward with a new rollout instead")
        return self._switch_back(record, f"undo within rollback_window ({elapsed:.0f}s after promotion)", None)

    def _switched(self, record: RolloutRecord) -> bool:
        """Blue-green between the switch and the end of its post-promotion analysis."""
        return isinstance(self.strategy, BlueGreenRollout) and record.step == BG_SWITCHED and record.previous is not None

    def _switch_back(self, record: RolloutRecord, trigger: str, analysis: dict[str, Any] | None) -> RolloutRecord:
        """Undo a promotion: the previous stable takes all traffic again and its version the champion alias."""
        record.canary, record.canary_version = record.stable, record.stable_version
        previous = self._previous(record)
        record.stable, record.stable_version = previous["stable"], previous["stable_version"]
        record.previous = None
        record.extra["restore_champion"] = True  # done once the record says Aborted, so resume redoes it
        return self._rollback(record, trigger, analysis)

    def _rollback(self, record: RolloutRecord, trigger: str, analysis: dict[str, Any] | None) -> RolloutRecord:
        # The record says Aborted before traffic moves: a crash here is finished by `resume`.
        record.status, record.message = ABORTED, trigger
        record.weights, record.mirror = self._before_rollout(record), dict(record.extra.get("baseline_mirror", {}))
        record.incident = record.incident or new_incident_id()
        record.extra.pop("promoting", None)
        return self._finish_rollback(record, trigger, analysis)

    def _finish_rollback(self, record: RolloutRecord, trigger: str, analysis: dict[str, Any] | None) -> RolloutRecord:
        self._move_traffic(record)  # saves the Aborted record first; on resume, moves traffic again (idempotent)
        if record.extra.get("restore_champion"):
            self._set_champion(record.model, record.stable_version)
        analysis = analysis or (record.analyses[-1] if record.analyses and record.analyses[-1]["phase"] == an.FAILED else None)
        where = write_incident(self.project.paths, self.project.storage, record, trigger, analysis)
        resource = f"Endpoint/{self.name}"
        self.audit.record(AuditAction.ROLLBACK, resource, incident=record.incident, reason=trigger,
                          stable=record.stable, canary=record.canary)
        self.audit.record(AuditAction.INCIDENT, resource, incident=record.incident, record=where)
        record.status, record.finished_at = DEGRADED, now()
        record.extra.pop("restore_champion", None)
        record.log("rolled back", trigger=trigger, incident=record.incident)
        self._save(record)
        return record

    def _before_rollout(self, record: RolloutRecord) -> dict[str, int]:
        """The traffic as it was before the rollout began, without the canary: where a rollback puts it."""
        baseline = {k: v for k, v in record.extra.get("baseline", {}).items() if k != record.canary and v}
        return baseline if sum(baseline.values()) == 100 and record.stable in baseline else {record.stable: 100}

    def _recovered(self, record: RolloutRecord, why: str) -> None:
        self.audit.record(AuditAction.RECOVERED, f"Endpoint/{self.name}", incident=record.incident, reason=why)
        record.log("recovered", incident=record.incident, reason=why)
        record.status, record.message, record.incident = HEALTHY, why, None
        self._save(record)

    # --- helpers --------------------------------------------------------------------------------

    def _move_traffic(self, record: RolloutRecord) -> None:
        """Save the record, then route by its weights: the record never lags behind the traffic."""
        self._save(record)
        self.router.route(record.weights, record.mirror)

    def _set_champion(self, model: str, version: str | None) -> None:
        if version is None:
            raise SpecopsError(f"the rollout of {self.name} does not know which version of {model} to make champion")
        self.router.set_champion(model, version)

    def _deployment(self, name: str) -> Deployment:
        found = self.endpoint.spec.deployment(name)
        if found is None:
            raise SpecopsError(f"no deployment named {name!r} on endpoint {self.name}")
        return found

    def _previous(self, record: RolloutRecord) -> dict[str, Any]:
        if record.previous is None:
            raise SpecopsError(f"the rollout of {self.name} records no previous stable deployment")
        return record.previous

    def _save(self, record: RolloutRecord) -> None:
        self.project.state.save_rollout(record)

    def _pause(self, record: RolloutRecord, message: str) -> RolloutRecord:
        record.status, record.message = PAUSED, message
        record.log("paused", step=record.step, message=message)
        self._save(record)
        return record



def _why(result: dict[str, Any]) -> str:
    return "; ".join(c["note"] or c["check"] for c in result["checks"] if c["phase"] != an.SUCCESSFUL)


def canary_split(stable: dict[str, int], canary: str, weight: int) -> dict[str, int]:
    """`weight`% on the canary, the rest shared by the stable deployments as they shared it before."""
    rest = 100 - weight
    total = sum(stable.values()) or 1
    shares = {name: rest * share // total for name, share in stable.items()}
    first = next(iter(shares), None)
    if first is not None:
        shares[first] += rest - sum(shares.values())  # integer weights still sum to 100
    return {**shares, canary: weight}
