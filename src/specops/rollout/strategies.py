"""Traffic for the experiment strategies: A/B reports per arm, the bandit adapts weights (Thompson sampling)."""
from __future__ import annotations

from typing import Any

import numpy as np

DRAWS = 4000  # posterior samples per update: P(best) to about +-1.5 points


def rewards(records: list[dict[str, Any]], arms: list[str], since: float, goal: str) -> dict[str, list[int]]:
    """[successes, failures] per arm from labelled answers; a correct answer is the reward for `maximize`."""
    counts = {arm: [0, 0] for arm in arms}
    for record in records:
        if record["deployment"] in counts and not record["shadow"] and record["time"] >= since and "label" in record:
            hit = (record["prediction"] == record["label"]) == (goal == "maximize")
            counts[record["deployment"]][0 if hit else 1] += 1
    return counts


def thompson_weights(counts: dict[str, list[int]], floor: int, seed: int | None = None) -> dict[str, int]:
    """Weights in whole percent: each arm's floor plus the rest shared by its chance of being best."""
    arms = list(counts)
    rng = np.random.default_rng(seed)
    alpha = np.array([counts[a][0] + 1 for a in arms])  # Beta(1, 1) prior: no evidence, no preference
    beta = np.array([counts[a][1] + 1 for a in arms])
    best = np.argmax(rng.beta(alpha, beta, size=(DRAWS, len(arms))), axis=1)
    p_best = np.bincount(best, minlength=len(arms)) / DRAWS
    shares = floor + (100 - floor * len(arms)) * p_best
    return dict(zip(arms, _whole_percent(shares)))


def _whole_percent(shares: np.ndarray) -> list[int]:
    """Round to integers summing to 100 (largest remainder), as set_traffic requires."""
    whole = np.floor(shares).astype(int)
    for i in np.argsort(whole - shares)[: 100 - whole.sum()]:
        whole[i] += 1
    return whole.tolist()
