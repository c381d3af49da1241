"""The drift engine agrees with hand computations and with scipy, and alerts on real shifts only."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from specops.monitoring.drift import EPSILON, BaselineSummary, detect, ks_and_wasserstein, summarize
from specops.spec.signals import AZUREML, BLUEPRINT, CHI2, JSD, KS, NWD, PSI, Signals


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_psi_uses_baseline_quantile_edges_and_smooths_empty_bins():
    summary = summarize(frame(x=np.arange(1.0, 9.0)), numeric=["x"], bins=4)
    # Quartile edges of 1..8 are 2.75, 4.5 and 6.25; the outer edges are open.
    np.testing.assert_array_equal(summary.numeric["x"].edges, [-np.inf, 2.75, 4.5, 6.25, np.inf])
    report = detect(summary, frame(x=[1.0, 1, 1, 2, 5, 6, 7, 8, 8, 8]))
    # Target shares per bin: 4/10, 0 (-> EPSILON), 2/10, 4/10 against 1/4 each.
    by_hand = (2 * (0.4 - 0.25) * math.log(0.4 / 0.25) + (EPSILON - 0.25) * math.log(EPSILON / 0.25)
               + (0.2 - 0.25) * math.log(0.2 / 0.25))
    assert by_hand == pytest.approx(2.107387, abs=1e-6)
    assert report.feature("x").metrics[PSI] == pytest.approx(by_hand, rel=1e-12)


def test_psi_of_categories_by_hand():
    summary = summarize(frame(c=["a"] * 50 + ["b"] * 30 + ["c"] * 20), categorical=["c"])
    report = detect(summary, frame(c=["a"] * 40 + ["b"] * 40 + ["c"] * 20))
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert by_hand == pytest.approx(0.0510826, abs=1e-7)
    assert report.feature("c").metrics[PSI] == pytest.approx(by_hand, rel=1e-12)


def test_a_target_outside_the_baseline_range_has_a_large_psi():
    # Two separate histograms (each with its own edges) would call these identical.
    summary = summarize(frame(x=np.linspace(0, 1, 1000)), numeric=["x"])
    report = detect(summary, frame(x=np.linspace(5, 6, 1000)))
    assert report.feature("x").metrics[PSI] > 5
    assert report.feature("x").metrics[JSD] > 0.8  # all in the top decile, which holds 10% of the baseline


@pytest.mark.parametrize("n, m", [(3000, 2000), (40_000, 25_000)])  # scipy's exact and asymptotic branches
@pytest.mark.parametrize("discrete", [False, True])
def test_ks_and_wasserstein_equal_scipy(n, m, discrete):
    rng = np.random.default_rng(n + m + discrete)
    draw = (lambda size, shift: rng.integers(0, 8, size) + shift) if discrete else (lambda size, shift: rng.normal(shift, 1, size))
    baseline, target = draw(n, 0).astype(float), draw(m, 0.04 if not discrete else 0).astype(float)
    report = detect(summarize(frame(x=baseline), numeric=["x"]), frame(x=target))
    feature = report.feature("x")
    expected = stats.ks_2samp(baseline, target)
    assert feature.statistics["ks_statistic"] == expected.statistic
    assert feature.metrics[KS] == expected.pvalue
    wasserstein = stats.wasserstein_distance(baseline, target)
    assert feature.statistics["wasserstein_distance"] == pytest.approx(wasserstein, rel=1e-12)
    # Azure ML normalises by the baseline's sample standard deviation.
    assert feature.metrics[NWD] == pytest.approx(wasserstein / baseline.std(ddof=1), rel=1e-12)


def test_merge_kernel_matches_scipy_on_ties_and_unequal_sizes():
    rng = np.random.default_rng(7)
    baseline, target = np.sort(rng.integers(0, 5, 20_001) / 2), np.sort(rng.integers(0, 6, 12_345) / 2)
    statistic, wasserstein = ks_and_wasserstein(baseline, target)
    assert statistic == stats.ks_2samp(baseline, target).statistic
    assert wasserstein == pytest.approx(stats.wasserstein_distance(baseline, target), rel=1e-12)


def test_categorical_signals_equal_scipy_and_new_categories_count():
    baseline = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    target = ["a"] * 380 + ["b"] * 310 + ["c"] * 250 + ["d"] * 60
    report = detect(summarize(frame(c=baseline), categorical=["c"]), frame(c=target))
    feature = report.feature("c")
    table = np.array([[500, 300, 200, 0], [380, 310, 250, 60]])
    expected = stats.chi2_contingency(table, correction=False)
    assert feature.metrics[CHI2] == pytest.approx(expected.pvalue, rel=1e-12)
    assert feature.statistics["chi_squared_statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert feature.statistics["cramers_v"] == pytest.approx(math.sqrt(expected.statistic / 2000), rel=1e-12)
    assert feature.statistics["new_categories"] == 1
    assert feature.metrics[JSD] == pytest.approx(jensenshannon(table[0] / 1000, table[1] / 1000, base=2), rel=1e-12)


def test_summary_round_trips_and_the_report_is_json(tmp_path):
    rng = np.random.default_rng(3)
    base = frame(x=rng.normal(size=5000), k=rng.integers(0, 4, 5000), c=rng.choice(["u", "v"], 5000))
    target = frame(x=np.append(rng.normal(size=4000), [np.nan] * 1000), k=rng.integers(0, 4, 5000),
                   c=rng.choice(["u", "w"], 5000))
    summary = summarize(base, numeric=["x", "k"], categorical=["c"])
    loaded = BaselineSummary.load(summary.save(tmp_path / "baseline.npz"))
    assert detect(loaded, target).to_dict() == detect(summary, target).to_dict()
    report = json.loads(detect(loaded, target, BLUEPRINT).to_json())
    x = next(f for f in report["features"] if f["name"] == "x")
    assert x["statistics"]["target_null_rate"] == pytest.approx(0.2)
    assert report["drifted"] == ["c"]  # "w" replaced "v": a new category


def test_a_feature_with_no_target_values_reports_nan_and_does_not_alert():
    summary = summarize(frame(x=np.arange(100.0)), numeric=["x"])
    report = detect(summary, frame(x=[np.nan] * 10), BLUEPRINT)
    assert report.drifted == []
    assert json.loads(report.to_json())["features"][0]["metrics"][NWD] is None


def test_the_caller_chooses_which_signal_decides():
    rng = np.random.default_rng(5)
    summary = summarize(frame(x=rng.normal(size=50_000)), numeric=["x"])
    target = frame(x=rng.normal(0.05, 1, 50_000))  # a tiny shift: significant, yet small
    assert detect(summary, target, Signals(numerical={KS: 0.05})).drifted == ["x"]
    assert detect(summary, target, AZUREML).drifted == []
    with pytest.raises(ValueError, match="not categorical drift metrics: normalized_wasserstein_distance"):
        Signals(categorical={NWD: 0.1})


def _alarms_on_identical_distributions(seed: int, signals: Signals, numeric: int = 0, categorical: int = 0,
                                      rows: int = 20_000) -> list[bool]:
    """Baseline and target drawn from one distribution: every alert is a false alarm."""
    rng = np.random.default_rng(seed)
    numeric_names, categorical_names = [f"x{i}" for i in range(numeric)], [f"c{i}" for i in range(categorical)]

    def draw() -> pd.DataFrame:
        codes = np.searchsorted([0.4, 0.7, 0.9], rng.random((categorical, rows)))  # shares 0.4, 0.3, 0.2, 0.1
        return pd.DataFrame(dict(zip(numeric_names, rng.normal(size=(numeric, rows)))) | dict(zip(categorical_names, codes)))

    report = detect(summarize(draw(), numeric_names, categorical_names), draw(), signals)
    return [f.drifted for f in report.features]


@pytest.mark.parametrize("metric", [KS, CHI2])
def test_false_alarm_rate_on_identical_distributions_is_the_significance_level(metric):
    level, per_seed = 0.05, {"numeric": 60} if metric == KS else {"categorical": 60}
    signals = Signals(numerical={KS: level}, categorical={CHI2: level})
    # 20,000 rows: above scipy's exact-KS size, so the asymptotic p-value computed here is the one tested.
    alarms = [a for seed in range(10) for a in _alarms_on_identical_distributions(seed, signals, **per_seed)]
    assert len(alarms) == 600
    # Two-sided binomial test: the observed rate is consistent with the stated level.
    assert stats.binomtest(sum(alarms), len(alarms), level).pvalue > 0.001, f"{sum(alarms)} alarms in {len(alarms)}"


def test_azure_defaults_raise_no_false_alarm_on_identical_distributions():
    assert not any(a for seed in range(3) for a in _alarms_on_identical_distributions(seed, AZUREML, 60, 60))


def test_default_signals_flag_exactly_the_four_shifted_features_in_a_million_rows():
    rows, rng = 1_000_000, np.random.default_rng(2026)
    numeric, categorical = [f"x{i:02d}" for i in range(20)], [f"c{i}" for i in range(5)]
    usual, changed = [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]

    def draw(proportions: dict[str, list[float]]) -> pd.DataFrame:
        columns = dict(zip(numeric, rng.standard_normal((20, rows))))
        for name in categorical:
            codes = rng.choice(4, size=rows, p=proportions.get(name, usual))
            columns[name] = pd.Categorical.from_codes(codes, ["a", "b", "c", "d"])
        return pd.DataFrame(columns)

    summary = summarize(draw({}), numeric, categorical)
    target = draw({"c3": changed})
    target["x03"] += 0.3  # a 0.3-standard-deviation mean shift
    target["x07"] *= 1.5  # a 1.5x scale change
    mixed = rng.random(rows) < 0.15  # a 15% mixture with a component three standard deviations away
    target.loc[mixed, "x11"] = rng.normal(3, 1, mixed.sum())

    report = detect(summary, target)
    assert sorted(report.drifted) == ["c3", "x03", "x07", "x11"]
    # Why the blueprint rule is not the default: decile PSI misses the mean shift.
    assert report.feature("x03").metrics[PSI] < 0.2


def test_unused_categories_of_a_pandas_categorical_are_not_new_categories():
    dtype = pd.CategoricalDtype(["a", "b", "z"])
    summary = summarize(frame(c=pd.Series(["a", "b"] * 50, dtype=dtype)), categorical=["c"])
    assert summary.categorical["c"].categories == ["a", "b"]
    report = detect(summary, frame(c=pd.Series(["a", "b"] * 50, dtype=dtype)))
    assert report.feature("c").statistics["new_categories"] == 0
    with pytest.raises(ValueError, match="baseline feature 'x' has no non-null values"):
        summarize(frame(x=[np.nan, np.nan]), numeric=["x"])
    with pytest.raises(ValueError, match="the target data lacks baseline feature.s.: c"):
        detect(summary, frame(d=["a"]))


def test_a_large_baseline_keeps_evenly_spaced_order_statistics():
    summary = summarize(frame(x=np.arange(10_000.0)), numeric=["x"], sample_size=1000)
    base = summary.numeric["x"]
    np.testing.assert_array_equal(base.sample, np.arange(5.0, 10_000, 10))  # the midpoint of every tenth
    assert base.count == 10_000 and base.mean == 4999.5  # moments and edges come from every row
    assert base.edges[5] == np.quantile(np.arange(10_000.0), 0.5)
