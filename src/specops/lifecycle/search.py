"""The train stage's search: which parameter points to train, in what order, and which to stop early.

Optuna drives it through ask and tell, so this process decides and worker processes fit:
- grid: every point of the params.yaml grid, in order (enqueued, so each is tried once);
- random: Optuna's RandomSampler; bayesian: its TPE sampler (constant liar, so trials running in
  parallel are not all drawn at the same point), both seeded with params.yaml's seed;
- early termination: a trial trains in rungs, on a growing share of the training rows (RUNGS), and
  reports the selection metric on the held-out rows after each; the policy (Optuna's MedianPruner,
  PercentilePruner, or Azure ML's bandit rule below) stops trials that fall behind. Without a
  policy a trial trains once, on all the rows.
- limits: at most max_total_trials, max_concurrent_trials at once, none started after timeout.
"""
from __future__ import annotations

import itertools
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner, MedianPruner, NopPruner, PercentilePruner
from optuna.trial import TrialState

from specops.core.durations import parse_duration
from specops.errors import StageFailed
from specops.lifecycle.trial import TrialFailed
from specops.spec.kinds import EarlyTermination, Sweep
from specops.spec.sweeps import Choice, Range, Space, trial_budget

# Shares of the training rows a trial trains on, one rung after another, under an early termination policy.
RUNGS = (0.2, 0.5, 1.0)
# Trials finished before the median and truncation policies judge any: one lucky start must not stop the rest.
STARTUP_TRIALS = 3
BAYESIAN_STARTUP = 5  # random draws before TPE models the space

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class TrialResult:
    id: str
    params: dict[str, Any]  # fixed parameters and this trial's point
    state: str = "running"  # complete | pruned
    reports: list[float] = field(default_factory=list)  # the selection metric after each rung
    model: Any = None  # the fully trained model (complete trials only)
    seconds: float = 0.0  # fitting time over all rungs

    @property
    def score(self) -> float | None:
        return self.reports[-1] if self.state == "complete" else None


@dataclass(frozen=True)
class SearchOutcome:
    trials: list[TrialResult]
    seconds: float
    stopped_by: str = ""  # "timeout" when the time limit kept trials from starting

    @property
    def complete(self) -> list[TrialResult]:
        return [t for t in self.trials if t.state == "complete"]


# (params, share of the training rows) -> (model, selection metric, seconds); runs in a worker process.
Fit = Callable[[dict[str, Any], float], tuple[Any, float, float]]


def search(sweep: Sweep, space: Space, fixed: dict[str, Any], seed: int, goal: Literal["maximize", "minimize"], workers: int,
           fit: Fit, setup: Callable[..., None], setup_args: tuple[Any, ...]) -> SearchOutcome:
    """Run the sweep. `fit` runs in spawned worker processes, each prepared once by `setup(*setup_args)`
    (the data goes to a worker once, not with every trial); both must be importable functions."""
    budget = trial_budget(sweep, space)
    study = optuna.create_study(direction=goal, sampler=_sampler(sweep, seed), pruner=_pruner(sweep.early_termination, goal))
    distributions = {name: _distribution(declared) for name, declared in space.items()}
    if sweep.sampling_algorithm == "grid":
        for point in itertools.islice(grid_points(space), budget):
            study.enqueue_trial(point)
    rungs = RUNGS if sweep.early_termination else (1.0,)
    deadline = time.monotonic() + parse_duration(sweep.limits.timeout).total_seconds() if sweep.limits.timeout else math.inf
    started, results = time.monotonic(), list[TrialResult]()
    running: dict[Future, tuple[optuna.trial.Trial, TrialResult, int]] = {}
    stopped_by = ""
    # spawn, not fork: the parent may hold MLflow/SQLite connections and threads that must not be copied.
    # (spawn re-imports the caller's __main__, so scripts calling run_stage need the __name__ guard.)
    workers = max(1, min(workers, budget))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=setup,
                             initargs=setup_args) as pool:
        def start() -> bool:
            nonlocal stopped_by
            if len(results) >= budget:
                return False
            if time.monotonic() >= deadline:
                stopped_by = "timeout"
                return False
            trial = study.ask(distributions)
            result = TrialResult(f"c{len(results) + 1:02d}", {**fixed, **trial.params})
            results.append(result)
            running[pool.submit(fit, result.params, rungs[0])] = (trial, result, 0)
            return True

        while len(running) < workers and start():
            pass
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                trial, result, rung = running.pop(future)
                try:
                    model, score, seconds = future.result()
                except TrialFailed as exc:
                    swept = ", ".join(f"{k}={result.params[k]}" for k in space) or "fixed parameters"
                    raise StageFailed(f"candidate {result.id} ({swept}) failed to train: {exc}") from None
                result.reports.append(score)
                result.seconds += seconds
                if rung == len(rungs) - 1:
                    result.state, result.model = "complete", model
                    study.tell(trial, score)
                    continue
                trial.report(score, rung)
                if trial.should_prune():
                    result.state = "pruned"
                    study.tell(trial, state=TrialState.PRUNED)
                    continue
                running[pool.submit(fit, result.params, rungs[rung + 1])] = (trial, result, rung + 1)
            while len(running) < workers and start():
                pass
    return SearchOutcome(results, time.monotonic() - started, stopped_by)


def grid_points(space: Space) -> list[dict[str, Any]]:
    names = [n for n, d in space.items() if isinstance(d, Choice)]
    values = [d.values for d in space.values() if isinstance(d, Choice)]
    return [dict(zip(names, point)) for point in itertools.product(*values)]


def _distribution(declared: Choice | Range) -> BaseDistribution:
    if isinstance(declared, Choice):
        return CategoricalDistribution(declared.values)
    if declared.integer:
        return IntDistribution(int(declared.low), int(declared.high), log=declared.log)
    return FloatDistribution(float(declared.low), float(declared.high), log=declared.log)


def _sampler(sweep: Sweep, seed: int) -> optuna.samplers.BaseSampler:
    if sweep.sampling_algorithm == "bayesian":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=BAYESIAN_STARTUP, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)  # grid: the enqueued points come first, and are all there is


def _pruner(policy: EarlyTermination | None, goal: str) -> BasePruner:
    if policy is None:
        return NopPruner()
    timing = {"n_warmup_steps": policy.delay_evaluation, "interval_steps": policy.evaluation_interval}
    if policy.policy == "median_stopping":
        return MedianPruner(n_startup_trials=STARTUP_TRIALS, **timing)
    if policy.policy == "truncation_selection":
        return PercentilePruner(100.0 - (policy.truncation_percentage or 0), n_startup_trials=STARTUP_TRIALS, **timing)
    return BanditPruner(policy, goal)


class BanditPruner(BasePruner):
    """Azure ML's bandit policy: stop a trial whose report falls outside the slack of the best report at that rung
    (maximize: below best / (1 + slack_factor), or below best - slack_amount)."""

    def __init__(self, policy: EarlyTermination, goal: str) -> None:
        self.policy, self.maximize = policy, goal == "maximize"

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.policy.delay_evaluation or (step - self.policy.delay_evaluation) % self.policy.evaluation_interval:
            return False
        others = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False)
                  if t.number != trial.number and step in t.intermediate_values]
        if not others:
            return False
        value = trial.intermediate_values[step]
        best = max(others) if self.maximize else min(others)
        if self.policy.slack_amount is not None:
            bound = best - self.policy.slack_amount if self.maximize else best + self.policy.slack_amount
        else:
            factor = 1 + (self.policy.slack_factor or 0)
            bound = best / factor if self.maximize else best * factor
        return value < bound if self.maximize else value > bound
