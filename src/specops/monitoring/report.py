"""A monitor run's reports: JSON for machines, one self-contained HTML page for people.

The HTML embeds its figures as PNG data URIs so the file can be attached to an
MLflow run, mailed or opened offline. Figures are drawn on bare matplotlib
`Figure` objects (the Agg canvas, no pyplot), which keeps no global state and is
safe in the controller's long-running process.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, select_autoescape
from matplotlib.figure import Figure

from specops.monitoring.drift import BaselineSummary, FeatureDrift
from specops.core.paths import ProjectPaths
from specops.spec.signals import DATA_QUALITY_METRICS, P_VALUE_METRICS

HISTOGRAM_BINS = 30
# The plotted range: outliers beyond these quantiles would squash every other bar into one.
PLOT_QUANTILES = (0.005, 0.995)
BASELINE_COLOUR, TARGET_COLOUR = "#4C72B0", "#DD8452"

# A line ending in a backslash continues on the next without a newline in the page.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ r.monitor }}: {{ r.status }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.name { text-align: left; } .alert { color: #b00020; font-weight: bold; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; } figcaption { font-size: 0.9em; }
</style></head><body>
<h1>Monitor {{ r.monitor }}: {{ r.status }}</h1>
<p>Window {{ r.window_start }} to {{ r.window_end }} on endpoint {{ r.endpoint }}:
{{ r.target_rows }} logged rows against a baseline of {{ r.baseline_rows if r.baseline_rows is not none else "(not read)" }} rows.</p>
{% if r.status == "inconclusive" %}<p class="alert">{{ r.reason }}</p>{% endif %}
{% if r.alerted_signals %}<h2>What alerted</h2><ul>
{% for f in features if f.alerts %}<li><b>{{ f.name }}</b>: {{ f.alerts | join("; ") }}</li>{% endfor %}
{% for s in r.monitoring_signals if s.alerts %}<li><b>{{ s.name }}</b>: {{ s.alerts | join("; ") }}</li>{% endfor %}
</ul>{% elif r.status == "ok" %}<p>No signal breached its thresholds.</p>{% endif %}
{% if r.actions %}<h2>Actions</h2><ul>{% for a in r.actions %}<li>{{ a }}</li>{% endfor %}</ul>{% endif %}
{% for s in r.monitoring_signals %}<h2 class="{{ 'alert' if s.status == 'alert' }}">{{ s.name }}: {{ s.status }}</h2>
{% if s.reason %}<p>{{ s.reason }}</p>{% endif %}
{% if s.name == "data_quality" %}<table><tr><th>feature</th><th>type</th>{% for m in quality_metrics %}<th>{{ m }}</th>{% endfor %}</tr>
{% for row in s.details.features %}<tr><td class="name">{{ row.feature }}</td><td>{{ row.type }}</td>
{% for m in quality_metrics %}<td>{{ number(row[m]) }}</td>{% endfor %}</tr>{% endfor %}</table>
{% elif s.metrics %}<table>{% for name, value in s.metrics.items() %}\
<tr><td class="name">{{ name }}</td><td>{{ number(value) }}</td></tr>{% endfor %}</table>{% endif %}
{% if s.details.by_group %}<table><tr><th>{{ s.details.sensitive }}</th><th>selection rate</th><th>rows</th></tr>
{% for group, row in s.details.by_group.items() %}\
<tr><td class="name">{{ group }}</td><td>{{ number(row.selection_rate) }}</td>\
<td>{{ number(row.count) }}</td></tr>{% endfor %}</table>{% endif %}
{% if s.details.baseline_top %}<p>Top features, baseline (champion on its training rows): {{ s.details.baseline_top | join(", ") }};
window ({{ s.details.model }}, {{ s.details.method }}): {{ s.details.target_top | join(", ") }}.</p>{% endif %}
{% endfor %}
{% if features %}<h2>Statistics</h2>
<p>Deciding thresholds: {{ thresholds }}</p>
<table><tr><th>feature</th><th>type</th>{% for m in metrics %}<th>{{ m }}{{ " (p-value)" if m in p_values }}</th>{% endfor %}\
<th>baseline mean</th><th>target mean</th><th>target null rate</th></tr>
{% for f in features %}<tr><td class="name{{ ' alert' if f.alerts }}">{{ f.name }}</td><td>{{ f.type }}</td>
{% for m in metrics %}<td>{{ number(f.metrics.get(m)) }}</td>{% endfor %}
<td>{{ number(f.statistics.get("baseline_mean")) }}</td><td>{{ number(f.statistics.get("target_mean")) }}</td>
<td>{{ number(f.statistics.get("target_null_rate")) }}</td></tr>{% endfor %}</table>
<h2>Baseline vs target</h2><div class="figures">
{% for f in features %}<figure><img alt="{{ f.name }}" src="data:image/png;base64,{{ figures[f.name] }}">
<figcaption>{{ f.name }}{{ " (drifted)" if f.alerts }}</figcaption></figure>{% endfor %}
</div>{% endif %}
</body></html>
"""
_TEMPLATE = Environment(autoescape=select_autoescape(default=True)).from_string(PAGE)


def list_reports(root: Path, monitor: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every written report (of one monitor, or all), newest window first: (report folder, report.json)."""
    found = [(path.parent, json.loads(path.read_text(encoding="utf-8")))
             for path in ProjectPaths(root).monitors.glob(f"{monitor or '*'}/reports/*/report.json")]
    return sorted(found, key=lambda item: (item[1]["window_end"], item[1]["monitor"]), reverse=True)


def write_reports(folder: Path, result: dict[str, Any], features: list[FeatureDrift],
                  baseline: BaselineSummary | None, target: pd.DataFrame) -> tuple[Path, Path]:
    """report.json (the result with every feature's metrics) and report.html; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    figures = {f.name: _figure(f, baseline, target) for f in features} if baseline else {}
    metrics = sorted({m for f in features for m in f.metrics})
    thresholds = "; ".join(f"{kind}: {', '.join(f'{m} {v:g}' for m, v in limits.items()) or 'none'}"
                           for kind, limits in result.get("signals", {}).items())
    html_path.write_text(_TEMPLATE.render(r=result, features=features, figures=figures, metrics=metrics,
                                          thresholds=thresholds, number=_number, p_values=P_VALUE_METRICS,
                                          quality_metrics=DATA_QUALITY_METRICS), encoding="utf-8")
    return json_path, html_path


def _number(value: float | None) -> str:
    return "" if value is None or value != value else f"{value:.4g}"


def _figure(feature: FeatureDrift, baseline: BaselineSummary, target: pd.DataFrame) -> str:
    figure = Figure(figsize=(4.6, 2.8), dpi=80, layout="tight")
    axes = figure.subplots()
    if feature.type == "numerical":
        _overlaid_histograms(axes, baseline.numeric[feature.name].sample, target[feature.name])
    else:
        base = baseline.categorical[feature.name]
        _category_bars(axes, dict(zip(base.categories, base.counts.tolist())), target[feature.name])
    axes.set_title(feature.name + (" (drifted)" if feature.alerts else ""), fontsize=10)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _overlaid_histograms(axes, baseline_sample: np.ndarray, column: pd.Series) -> None:
    target = column.to_numpy(dtype=np.float64, na_value=np.nan)
    target = target[~np.isnan(target)]
    # One set of bin edges for both samples, over the range either one mostly covers.
    ranges = np.concatenate([np.quantile(sample, PLOT_QUANTILES) for sample in (baseline_sample, target) if len(sample)])
    low, high = ranges.min(), ranges.max()
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else HISTOGRAM_BINS  # a constant feature
    axes.hist(baseline_sample, bins=edges, density=True, alpha=0.55, color=BASELINE_COLOUR, label="baseline")
    axes.hist(target, bins=edges, density=True, alpha=0.55, color=TARGET_COLOUR, label="target")
    axes.locator_params(axis="x", nbins=5)  # wide values (incomes) would otherwise overlap
    axes.tick_params(labelsize=8)
    axes.set_yticks([])  # densities in units of 1/value say nothing; the shapes do


def _category_bars(axes, baseline_counts: dict[str, int], column: pd.Series) -> None:
    observed = column.dropna().astype(str).value_counts()
    categories = list(baseline_counts) + sorted(set(observed.index) - set(baseline_counts))
    base_total, target_total = sum(baseline_counts.values()) or 1, observed.sum() or 1
    positions = np.arange(len(categories))
    axes.bar(positions - 0.2, [baseline_counts.get(c, 0) / base_total for c in categories], 0.4,
             color=BASELINE_COLOUR, label="baseline")
    axes.bar(positions + 0.2, [observed.get(c, 0) / target_total for c in categories], 0.4,
             color=TARGET_COLOUR, label="target")
    axes.set_xticks(positions, categories, fontsize=8)
    axes.set_ylabel("share", fontsize=8)
