"""SLIs and error budgets on hand-made data with known answers."""
from __future__ import annotations

import pytest

from specops.slo import budget as b
from specops.slo import history
from specops.slo.engine import Inputs, evaluate_objective
from specops.spec.slos import SLO
from tests.slo.conftest import HOUR, NOW, record

DAY = 86400.0


def slo(*objectives: dict, window: str = "PT1H", burn_window: str = "PT5M") -> SLO:
    return SLO.model_validate({"apiVersion": "specops/v1", "kind": "SLO", "metadata": {"name": "s"},
                               "spec": {"endpoint": "e", "window": window, "burn_window": burn_window,
                                        "objectives": list(objectives)}})


def one(spec: SLO, inputs: Inputs, now: float = NOW) -> b.ObjectiveStatus:
    return evaluate_objective(spec, spec.spec.objectives[0], inputs, now)


AVAILABILITY = {"sli": "availability", "target": 0.995}


def scrapes(*samples: tuple[float, float, float]) -> list[dict]:
    return [{"time": t, "counts": {"blue": {"good": good, "bad": bad}}} for t, good, bad in samples]


@pytest.mark.parametrize("errors, remaining, status", [
    (7, -0.4, b.EXHAUSTED),   # budget 5, 7 spent
    (5, 0.0, b.EXHAUSTED),    # spent exactly: one more error breaks the objective
    (4, 0.2, b.AT_RISK),      # under a quarter left
    (1, 0.8, b.OK),
])
def test_availability_budget_on_1000_requests_at_99_5_percent(errors, remaining, status):
    inputs = Inputs(samples=scrapes((NOW - 30 * 60, 1000 - errors, errors)))
    result = one(slo(AVAILABILITY, burn_window="PT1H"), inputs)
    assert (result.events, result.bad, result.budget, result.consumed) == (1000, errors, 5, errors)
    assert result.sli == pytest.approx((1000 - errors) / 1000)
    assert result.remaining == pytest.approx(remaining) and result.status == status
    assert result.burn_rate == pytest.approx(errors / 1000 / 0.005)  # burn window = window here


def test_the_burn_rate_looks_at_the_recent_stretch_only():
    # 2 errors 50 minutes ago, then 3 in the last 5 minutes out of 100 requests: 3% against 0.5% allowed.
    inputs = Inputs(samples=scrapes((NOW - 50 * 60, 998, 2), (NOW - 10 * 60, 1900, 2), (NOW - 60, 1997, 5)))
    result = one(slo(AVAILABILITY), inputs)
    assert result.events == 2002 and result.bad == 5 and result.remaining == pytest.approx(1 - 5 / 10.01)
    assert result.burn_rate == pytest.approx(0.03 / 0.005)
    assert result.status == b.AT_RISK  # half the budget is left, but it is burning six times too fast


def test_bad_events_slide_out_of_the_window_and_the_budget_recovers():
    # 7 errors in the first scrape, then only good requests: exhausted until that scrape is older than the hour.
    inputs = Inputs(samples=scrapes((NOW, 993, 7), (NOW + 30 * 60, 1093, 7), (NOW + 90 * 60, 2093, 7)))
    spec = slo(AVAILABILITY)
    assert one(spec, inputs, now=NOW + 30 * 60).status == b.EXHAUSTED
    later = one(spec, inputs, now=NOW + 90 * 60)  # window (NOW+30m, NOW+90m]: 1000 good, 0 bad
    assert (later.events, later.bad, later.remaining, later.status) == (1000, 0, 1.0, b.OK)


def test_a_restarted_server_counts_from_zero_and_mirrors_do_not_count():
    samples = [{"time": NOW - 40 * 60, "counts": {"blue": {"good": 500, "bad": 0}, "shadow": {"good": 0, "bad": 50}}},
               {"time": NOW - 20 * 60, "counts": {"blue": {"good": 30, "bad": 1}, "shadow": {"good": 0, "bad": 80}}}]
    good, bad = history.increase(samples, NOW - HOUR, NOW, skip=frozenset({"shadow"}))
    assert (good, bad) == (530, 1)
    assert history.increase(samples, NOW - 30 * 60, NOW) == (30, 31)  # the restart: the new server's own counts


def test_no_scrapes_is_no_data_not_a_pass():
    result = one(slo(AVAILABILITY), Inputs())
    assert result.status == b.NO_DATA and result.remaining is None and "no requests" in result.note


def test_parse_counts_reads_good_and_server_errors_but_not_client_mistakes():
    text = ('specops_requests_total{deployment="blue",status="2xx"} 90\n'
            'specops_requests_total{deployment="blue",status="4xx"} 40\n'
            'specops_requests_total{deployment="blue",status="5xx"} 3\n'
            'specops_errors_total{deployment="blue"} 5\n')  # 3 x 5xx + 2 timeouts (408, counted among 4xx)
    assert history.parse_counts(text) == {"blue": {"good": 90.0, "bad": 5.0}}


def test_the_server_s_own_exposition_parses():
    from specops.serving.metrics import Metrics, shared_array

    metrics = Metrics(shared_array(1, 1), ["blue"], 0)
    for status in (200, 200, 200, 500, 408, 400):
        metrics.observe("blue", status, 0.01)
    assert history.parse_counts(metrics.exposition().decode()) == {"blue": {"good": 3.0, "bad": 2.0}}


def test_latency_counts_requests_within_the_threshold_from_the_log():
    records = [record(NOW - 600 - i, latency_ms=100.0) for i in range(95)]
    records += [record(NOW - 600 - i, latency_ms=400.0, request_id=f"slow{i}") for i in range(5)]
    records += [record(NOW - 600, latency_ms=400.0, row=1, request_id="slow0")]  # a second row of one request
    records += [record(NOW - 600, latency_ms=900.0, shadow=True)]  # a mirrored copy: no client waited for it
    records += [record(NOW - 2 * HOUR, latency_ms=900.0)]  # outside the window
    result = one(slo({"sli": "latency", "threshold_ms": 350, "target": 0.95}), Inputs(records=records))
    assert (result.events, result.bad, result.budget, result.remaining) == (100, 5, pytest.approx(5), 0.0)
    assert result.status == b.EXHAUSTED and result.note.startswith("p95 100.0 ms")


def test_a_sampled_deployment_s_records_stand_for_more_requests():
    # green logs half its requests: its 10 slow records stand for 20 of its requests.
    records = [record(NOW - 60, latency_ms=10.0, deployment="blue") for _ in range(80)]
    records += [record(NOW - 60, latency_ms=500.0, deployment="green") for _ in range(10)]
    result = one(slo({"sli": "latency", "threshold_ms": 350, "target": 0.9}),
                 Inputs(records=records, rates={"blue": 1.0, "green": 0.5}))
    assert (result.events, result.bad) == (100, 20) and result.sli == pytest.approx(0.8)
    assert "green 0.5" in result.note


def test_correctness_is_accuracy_on_labelled_answers():
    records = [record(NOW - 60, prediction=1, label=1) for _ in range(90)]
    records += [record(NOW - 60, prediction=1, label=0) for _ in range(10)]
    records += [record(NOW - 60, prediction=0) for _ in range(50)]  # no feedback yet: not an event
    result = one(slo({"sli": "correctness", "target": 0.85, "min_samples": 100}), Inputs(records=records))
    assert (result.sli, result.events, result.bad, result.budget) == (0.9, 100, 10, pytest.approx(15))
    assert result.remaining == pytest.approx(1 / 3) and result.status == b.OK


def test_too_few_labels_is_no_data():
    records = [record(NOW - 60, prediction=1, label=0) for _ in range(20)]
    result = one(slo({"sli": "correctness", "target": 0.85, "min_samples": 100}), Inputs(records=records))
    assert result.status == b.NO_DATA and result.sli == 0.0 and "20 labelled answers" in result.note


@pytest.mark.parametrize("age_days, remaining, status", [(10, 2 / 3, b.OK), (25, 1 / 6, b.AT_RISK), (31, -1 / 30, b.EXHAUSTED)])
def test_freshness_budget_is_the_model_s_age_against_max_age(age_days, remaining, status):
    inputs = Inputs(trained_at={"credit-risk v3": NOW - age_days * DAY, "credit-risk v4": NOW - DAY})
    result = one(slo({"sli": "freshness", "max_age": "P30D"}), inputs)
    assert result.sli == pytest.approx(age_days) and result.remaining == pytest.approx(remaining)
    assert result.status == status and "credit-risk v3" in result.note  # the oldest served model decides
    assert result.burn_rate is None


def test_fairness_is_fairlearn_s_demographic_parity_difference():
    from fairlearn.metrics import demographic_parity_difference

    groups = ["F"] * 40 + ["M"] * 60 + ["X"] * 5  # X: too few rows to count
    predictions = [1] * 12 + [0] * 28 + [1] * 30 + [0] * 30 + [1] * 5
    records = [record(NOW - 60, prediction=p, inputs={"gender": g}) for g, p in zip(groups, predictions)]
    for r in records[::2]:  # the attribute logged beside the inputs rather than as one counts the same
        r["sensitive"] = {"gender": r.pop("inputs")["gender"]}
    spec = slo({"sli": "fairness", "max_parity_diff": 0.25, "sensitive": "gender", "min_samples": 30})
    result = one(spec, Inputs(records=records))
    expected = demographic_parity_difference(predictions[:100], predictions[:100], sensitive_features=groups[:100])
    assert result.sli == pytest.approx(expected) == pytest.approx(0.2)
    assert result.remaining == pytest.approx(0.2) and result.status == b.AT_RISK
    assert "F: 0.300 of 40" in result.note and "X" not in result.note


def test_fairness_without_the_sensitive_column_in_the_log_is_no_data():
    records = [record(NOW - 60, inputs={"income": 1.0}) for _ in range(100)]
    spec = slo({"sli": "fairness", "sensitive": "gender"})
    result = one(spec, Inputs(records=records))
    assert result.status == b.NO_DATA and "fewer than two groups" in result.note


def test_an_objective_may_have_its_own_window():
    records = [record(NOW - 3 * HOUR, latency_ms=900.0)] + [record(NOW - 60, latency_ms=10.0) for _ in range(19)]
    short = one(slo({"sli": "latency", "threshold_ms": 350, "target": 0.9}), Inputs(records=records))
    long = one(slo({"sli": "latency", "threshold_ms": 350, "target": 0.9, "window": "P1D"}), Inputs(records=records))
    assert (short.events, short.bad, long.events, long.bad) == (19, 0, 20, 1)
