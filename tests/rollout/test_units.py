"""Rollout pieces without a server: histogram quantiles, windows, analysis phases, Thompson weights."""
from __future__ import annotations

import pytest

from specops.rollout.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL, Arm, analyse
from specops.rollout.metrics import Traffic, parse, quantile, window
from specops.core.paths import ProjectPaths
from specops.state.records import RolloutRecord
from specops.state.storage import LocalStorage
from specops.state.store import RecordChanged, StateStore
from specops.rollout.strategies import thompson_weights
from specops.spec.endpoints import CanaryRollout
from specops.spec.kinds import Gate

SCRAPE = """
specops_requests_total{deployment="a",status="2xx"} 90
specops_requests_total{deployment="a",status="5xx"} 10
specops_errors_total{deployment="a"} 10
specops_request_duration_seconds_bucket{deployment="a",le="0.01"} 50
specops_request_duration_seconds_bucket{deployment="a",le="0.1"} 100
specops_request_duration_seconds_bucket{deployment="a",le="+Inf"} 100
"""


def canary(min_samples: int = 10, **rollback) -> CanaryRollout:
    return CanaryRollout(strategy="canary", steps=[{"weight": 10}], min_samples=min_samples, rollback=rollback)


def arm(name: str, requests: int = 100, errors: int = 0, p95: float = 5.0, labelled: int = 100, correct: int = 90) -> Arm:
    return Arm(name, Traffic(requests, errors, p95), labelled, correct)


def test_scrape_is_parsed_and_a_window_counts_only_its_own_requests():
    after = parse(SCRAPE)
    assert after["a"]["requests"] == 100 and after["a"]["errors"] == 10
    before = parse(SCRAPE.replace(" 90\n", " 40\n").replace(" 10\n", " 5\n").replace("} 100\n", "} 50\n"))
    measured = window(before, after, "a")
    assert (measured.requests, measured.errors) == (55, 5)


def test_a_restarted_server_counts_from_zero():
    bigger = parse(SCRAPE.replace(" 90\n", " 900\n"))
    assert window(bigger, parse(SCRAPE), "a").requests == 100


def test_p95_interpolates_within_its_bucket_like_prometheus():
    # 50 observations <= 10 ms, 50 more <= 100 ms: the 95th is 90% of the way through the second bucket.
    assert quantile([[0.01, 50], [0.1, 100], [float("inf"), 100]], 0.95) == pytest.approx(91.0)
    assert quantile([[0.01, 0], [float("inf"), 0]], 0.95) is None


def test_too_few_samples_is_inconclusive_whatever_else_holds():
    result = analyse(arm("c", requests=5, errors=5), arm("s"), canary(min_samples=10), None)
    assert result["phase"] == INCONCLUSIVE and [c["check"] for c in result["checks"]] == ["samples"]


def test_rollback_conditions_fail_the_analysis():
    assert analyse(arm("c"), arm("s"), canary(), None)["phase"] == SUCCESSFUL
    errors = analyse(arm("c", errors=4), arm("s", errors=1), canary(), None)  # 4% > 3 x 1%
    assert errors["phase"] == FAILED
    slow = analyse(arm("c", p95=130.0), arm("s"), canary(latency_slo_ms=100), None)  # > 100 ms + 25%
    assert slow["phase"] == FAILED
    # A 3.3% relative drop (> 2%) is noise on 100 labels each, and evidence on 5,000 each.
    noise = analyse(arm("c", correct=87), arm("s", correct=90), canary(), None)
    assert noise["phase"] == SUCCESSFUL and noise["checks"][-1]["check"] == "accuracy regression"
    worse = analyse(arm("c", labelled=5000, correct=4350), arm("s", labelled=5000, correct=4500), canary(), None)
    assert worse["phase"] == FAILED and worse["checks"][-1]["check"] == "accuracy regression"


def test_too_few_labels_leave_the_regression_check_inconclusive():
    result = analyse(arm("c", labelled=3, correct=3), arm("s"), canary(), None)
    assert result["phase"] == INCONCLUSIVE


def test_a_check_against_the_champion_names_the_stable_deployment():
    """In a rollout the champion is the stable deployment: its note names it so (not `vblue`, a version-like name)."""
    gate = Gate.model_validate({"apiVersion": "specops/v1", "kind": "Gate", "metadata": {"name": "g"},
                                "spec": {"checks": [{"metric": "accuracy", "compare_to": "champion", "min": -0.01}]}})
    [check] = [c for c in analyse(arm("green", correct=88), arm("blue"), canary(), gate)["checks"]
               if c["check"] == "accuracy - champion >= -0.01"]
    assert check["note"] == "vs stable deployment blue" and check["value"] == pytest.approx(-0.02)


def test_thompson_weights_sum_to_100_and_keep_every_floor():
    weights = thompson_weights({"good": [95, 5], "bad": [5, 95], "new": [0, 0]}, floor=5, seed=0)
    assert sum(weights.values()) == 100 and min(weights.values()) >= 5
    assert weights["good"] > weights["new"] >= weights["bad"]


def test_a_stale_copy_of_the_record_is_refused(tmp_path):
    record = RolloutRecord(endpoint="e", strategy="canary", stable="a", canary="b", model="m", stable_version="1", canary_version="2")
    store = StateStore(LocalStorage(ProjectPaths(tmp_path).state_dir), "local")
    store.save_rollout(record)
    theirs, ours = store.rollout("e"), store.rollout("e")
    theirs.status = "Degraded"
    store.save_rollout(theirs)  # e.g. a person's `rollout abort`
    with pytest.raises(RecordChanged, match="now Degraded"):
        store.save_rollout(ours)
    assert store.rollout("e").status == "Degraded"


@pytest.mark.parametrize("stable, weight, expected", [
    ({"blue": 100}, 20, {"blue": 80, "green": 20}),
    ({"blue": 60, "teal": 40}, 20, {"blue": 48, "teal": 32, "green": 20}),  # both stable keep their shares of the rest
    ({"blue": 34, "teal": 33, "red": 33}, 10, {"blue": 32, "teal": 29, "red": 29, "green": 10}),  # floors, the rest on blue
])
def test_a_canary_takes_its_weight_and_every_stable_deployment_keeps_its_share_of_the_rest(stable, weight, expected):
    """One split for both backends (the engine hands it to the local or the Azure router): never dropping a stable."""
    from specops.rollout.engine import canary_split

    split = canary_split(stable, "green", weight)
    assert split == expected and sum(split.values()) == 100
