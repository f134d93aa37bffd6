"""Paired significance tests on the per-user test metrics of result records.

Two results can be compared user by user only when they evaluated the same users on the same
prepared data: the same dataset, the same prepared-data fingerprint and the same set of evaluated
users. Each user's difference of the metric (A − B) is then one paired observation, and:

- the paired t-test (scipy.stats.ttest_rel, two-sided) tests the mean difference, which is what the
  leaderboard ranks on;
- the Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, scipy's defaults: users with a
  zero difference are dropped) checks the same without assuming normal differences;
- the effect size is the mean difference and Cohen's d for paired samples,
  mean(diff) / std(diff, ddof=1).

A result with several seeds contributes, per user, the metric averaged over its seeds. The
leaderboard compares every row with the best row (paired t-test) and corrects the p-values of
these comparisons with Holm–Bonferroni; a row whose corrected p-value is at least `ALPHA` is
not significantly worse than the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..errors import UsageError
from .records import Record

ALPHA = 0.05


class NotComparable(UsageError):
    """Two results were not evaluated on the same prepared data and users: no paired test."""


def check_metric(metric: str) -> str:
    if metric not in metrics.metric_names():
        raise UsageError(f"Unknown metric '{metric}'. Valid metrics: {', '.join(metrics.metric_names())}.")
    return metric


def label(record: Record) -> str:
    return record.run_id


def data_key(record: Record) -> tuple[str, str]:
    return record.dataset.name, record.dataset.fingerprint


def user_metric(record: Record, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(evaluated user ids, sorted; the metric of each) from a record's per-user test ranks."""
    users = record.users()
    values = metrics.per_user(record.test_ranks())[check_metric(metric)]
    order = np.argsort(users, kind="stable")
    return users[order], values[order]


def why_not_comparable(a: Record, b: Record) -> str | None:
    """None when records `a` and `b` evaluated the same users on the same prepared data, else why not."""
    (ds_a, fp_a), (ds_b, fp_b) = data_key(a), data_key(b)
    if ds_a != ds_b:
        return f"{label(a)} is on dataset {ds_a}, {label(b)} on {ds_b}"
    if fp_a != fp_b:
        return (f"{label(a)} and {label(b)} are on different prepared data of {ds_a} (fingerprints {fp_a[:8]} and "
                f"{fp_b[:8]}: other raw files or other preparation settings)")
    users_a, users_b = a.users(), b.users()
    if not np.array_equal(np.sort(users_a), np.sort(users_b)):
        common = len(np.intersect1d(users_a, users_b))
        return (f"{label(a)} evaluated {len(users_a):,} users and {label(b)} {len(users_b):,}, "
                f"{common:,} of them in common")
    return None


def seed_average(runs: list[Record], metric: str) -> np.ndarray:
    """Per-user metric averaged over the seeds of one result (users sorted by id)."""
    for other in runs[1:]:
        reason = why_not_comparable(runs[0], other)
        if reason:
            raise NotComparable(f"The seeds of one result differ: {reason}.")
    return np.mean([user_metric(r, metric)[1] for r in runs], axis=0)


def check_comparable(runs_a: list[Record], runs_b: list[Record]) -> None:
    reason = why_not_comparable(runs_a[0], runs_b[0])
    if reason:
        raise NotComparable(
            f"No paired test: {reason}. A paired test needs the same prepared data and the same evaluated users."
        )


@dataclass
class Paired:
    """A paired comparison of A and B over `n` users; differences are A − B."""

    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean(A − B)
    std_diff: float  # std(A − B, ddof=1)
    cohens_d: float  # diff / std_diff
    t: float
    p_ttest: float
    w: float
    p_wilcoxon: float


def paired(a: np.ndarray, b: np.ndarray) -> Paired:
    """Paired t-test, Wilcoxon signed-rank test and effect size of per-user values `a` against `b`."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise UsageError(f"A paired test needs two equally long lists of at least 2 values; got {a.shape} and {b.shape}.")
    d = a - b
    mean, std = float(d.mean()), float(d.std(ddof=1))
    if not d.any():  # identical results: no difference to test (scipy would return nan)
        t, p_t, w, p_w = 0.0, 1.0, 0.0, 1.0
    else:
        tt = stats.ttest_rel(a, b)
        wx = stats.wilcoxon(a, b)
        t, p_t, w, p_w = float(tt.statistic), float(tt.pvalue), float(wx.statistic), float(wx.pvalue)
    if std > 0:
        cohens_d = mean / std
    else:
        cohens_d = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return Paired(len(d), float(a.mean()), float(b.mean()), mean, std, cohens_d, t, p_t, w, p_w)


def compare(runs_a: list[Record], runs_b: list[Record], metric: str = "ndcg@10") -> Paired:
    """Paired comparison of two results (each one or several seeds of the same config) on `metric`."""
    check_metric(metric)
    check_comparable(runs_a, runs_b)
    return paired(seed_average(runs_a, metric), seed_average(runs_b, metric))


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given: the i-th smallest of m is multiplied by
    m − i (i from 0), made monotone non-decreasing, and capped at 1."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Verdict:
    """A leaderboard row against the best row."""

    status: str  # "best", "tied" (not significantly worse), "worse", or "n/a" (no paired test possible)
    p: float | None = None  # Holm-corrected p-value of the paired t-test against the best row
    test: Paired | None = None
    reason: str = ""


def against_best(rows: list[list[Record]], metric: str = "ndcg@10", alpha: float = ALPHA) -> list[Verdict]:
    """One verdict per row; `rows` (each a list of the records of its seeds) is ordered best first."""
    if not rows:
        return []
    verdicts = [Verdict("best")]
    try:
        best = seed_average(rows[0], metric)
    except NotComparable as exc:
        return verdicts + [Verdict("n/a", reason=f"the best row cannot be tested: {exc}") for _ in rows[1:]]
    tests: dict[int, Paired] = {}
    for i, runs in enumerate(rows[1:], start=1):
        reason = why_not_comparable(rows[0][0], runs[0])
        if reason is None:
            try:
                tests[i] = paired(best, seed_average(runs, metric))
            except NotComparable as exc:  # the row's own seeds differ
                reason = str(exc)
        # a tested row's verdict is decided below, once every p-value of the family is known
        verdicts.append(Verdict("n/a", reason=reason) if reason else None)
    for (i, test), p in zip(tests.items(), holm([t.p_ttest for t in tests.values()])):
        verdicts[i] = Verdict("tied" if p >= alpha else "worse", p, test)
    return verdicts
