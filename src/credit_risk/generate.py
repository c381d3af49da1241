"""Seeded generator of synthetic loan applications (the specops example data).

Each row is one applicant; the columns match specs/data/credit-applications.yaml:

- income: yearly income, log-normal around a median of 55,000
- debt_ratio: debt over income, gamma-distributed (mean 0.4), capped at 10
- credit_score: normal around 680 (sd 60), clipped to 300-850
- age: normal around 42 (sd 12), clipped to 18-90
- employment_years: exponential (mean 6), never more than age - 18
- region: north / south / east / west with fixed proportions
- gender: F / M, half each; the sensitive attribute
- default: 1 if the applicant defaulted

The default probability is a logistic function of the standardised features.
Credit score, debt ratio and income carry most of the signal. Gender has no
effect on risk, so a model's demographic parity difference is sampling noise
(typically under 0.06 on the 25% test split of 1,500+ rows).
The standardisation uses fixed population constants rather than sample
statistics, so drifted data keeps the same feature -> risk relationship (a
covariate shift) unless the drift is `concept`, which changes the relationship
itself.

Drift modes, for exercising monitors:

- none: the reference population
- income: incomes fall by a fifth (median 44,000)
- credit_score: scores drop by 40 points on average
- region: the north grows from 30% to 55% of applicants
- concept: debt ratio matters twice as much and credit score half as much
- recession: income and concept together (the monitor sees only the income shift;
  the labels carry the changed relationship)

Output is byte-identical for the same arguments: numbers are written with a
fixed format and the random generator is numpy's seeded PCG64.

    python -m credit_risk.generate --rows 5000 --seed 7 --out data/credit.csv --drift income
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("north", "south", "east", "west")
GENDERS = ("F", "M")


@dataclass(frozen=True)
class Population:
    income_median: float = 55_000.0
    credit_mean: float = 680.0
    region_weights: tuple[float, ...] = (0.30, 0.25, 0.25, 0.20)
    debt_weight: float = 1.3
    credit_weight: float = -1.5


# Fixed centres and scales for the risk function (see the module docstring).
REFERENCE = Population()
INCOME_LOG_SD = 0.45
DEBT_MEAN, DEBT_SD = 0.4, 0.28
CREDIT_SD = 60.0
AGE_MEAN, AGE_SD = 42.0, 12.0
EMPLOYMENT_MEAN = 6.0
REGION_EFFECT = {"north": -0.2, "south": 0.25, "east": 0.0, "west": 0.1}
INTERCEPT = -1.1

DRIFTS = {
    "none": REFERENCE,
    "income": dataclasses.replace(REFERENCE, income_median=44_000.0),
    "credit_score": dataclasses.replace(REFERENCE, credit_mean=640.0),
    "region": dataclasses.replace(REFERENCE, region_weights=(0.55, 0.15, 0.15, 0.15)),
    "concept": dataclasses.replace(REFERENCE, debt_weight=2.6, credit_weight=-0.75),
    # Both at once, as a downturn brings them: what the demo's fourth act sends.
    "recession": dataclasses.replace(REFERENCE, income_median=44_000.0, debt_weight=2.6, credit_weight=-0.75),
}

FORMATS = {
    "income": "{:.2f}",
    "debt_ratio": "{:.4f}",
    "credit_score": "{:d}",
    "age": "{:d}",
    "employment_years": "{:.1f}",
    "region": "{}",
    "gender": "{}",
    "default": "{:d}",
}


def generate(rows: int, seed: int, drift: str = "none") -> pd.DataFrame:
    """Return `rows` applications drawn from the population `drift` names."""
    population = DRIFTS[drift]
    rng = np.random.default_rng(seed)
    income = np.exp(rng.normal(np.log(population.income_median), INCOME_LOG_SD, rows))
    debt_ratio = np.minimum(rng.gamma(2.0, DEBT_MEAN / 2.0, rows), 10.0)
    credit_score = np.clip(np.rint(rng.normal(population.credit_mean, CREDIT_SD, rows)), 300, 850).astype(int)
    age = np.clip(np.rint(rng.normal(AGE_MEAN, AGE_SD, rows)), 18, 90).astype(int)
    employment_years = np.minimum(rng.exponential(EMPLOYMENT_MEAN, rows), age - 18)
    region = rng.choice(REGIONS, size=rows, p=population.region_weights)
    gender = rng.choice(GENDERS, size=rows)
    frame = pd.DataFrame({
        "income": income, "debt_ratio": debt_ratio, "credit_score": credit_score, "age": age,
        "employment_years": employment_years, "region": region, "gender": gender,
    })
    frame["default"] = (rng.random(rows) < default_probability(frame, population)).astype(int)
    return frame


def default_probability(frame: pd.DataFrame, population: Population) -> np.ndarray:
    logit = (
        INTERCEPT
        - 0.9 * (np.log(frame["income"]) - np.log(REFERENCE.income_median)) / INCOME_LOG_SD
        + population.debt_weight * (frame["debt_ratio"] - DEBT_MEAN) / DEBT_SD
        + population.credit_weight * (frame["credit_score"] - REFERENCE.credit_mean) / CREDIT_SD
        - 0.3 * (frame["age"] - AGE_MEAN) / AGE_SD
        - 0.4 * (frame["employment_years"] - EMPLOYMENT_MEAN) / EMPLOYMENT_MEAN
        + frame["region"].map(REGION_EFFECT).to_numpy()
    )
    return 1.0 / (1.0 + np.exp(-logit.to_numpy()))


def to_csv(frame: pd.DataFrame) -> str:
    lines = [",".join(FORMATS)]
    columns = [frame[name].tolist() for name in FORMATS]
    formats = list(FORMATS.values())
    for row in zip(*columns):
        lines.append(",".join(fmt.format(value) for fmt, value in zip(formats, row)))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate synthetic credit applications (see the module docstring).")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--drift", choices=sorted(DRIFTS), default="none")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_csv(generate(args.rows, args.seed, args.drift)), encoding="utf-8", newline="\n")
    print(f"wrote {args.rows} rows ({args.drift} drift, seed {args.seed}) to {args.out}")


if __name__ == "__main__":
    main()
