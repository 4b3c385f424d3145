"""One statistical check of generated data against an exact value, shared by the real tests and their biased twins.

The error is measured, not assumed: by the jackknife over independent blocks (bins of independent
Monte Carlo chains, each bin longer than the autocorrelation), or, for counts, from their Poisson
statistics. The check accepts pulls below ``N_SIGMA = 5``: a right generator with a new random
stream (another numpy, other seeds) fails it about once in 10^5 with an error from 40 blocks, once
in 10^6 for counts. Each real test also has a twin that generates with a parameter 2 % off and
asserts that the same check rejects it: the real test has the power it claims.
"""

from typing import NamedTuple

import numpy as np

N_SIGMA = 5.0
BIAS = 1.02  # the biased twins generate at BIAS times the parameter, and compare with the exact value at 1


class Verdict(NamedTuple):
    value: np.ndarray
    error: np.ndarray
    exact: np.ndarray
    ok: bool

    @property
    def pull(self):
        return (self.value - self.exact) / self.error

    def __str__(self):
        return (f"{np.round(self.value, 5)} +- {np.round(self.error, 5)} vs exact {np.round(self.exact, 5)} "
                f"(pull {np.round(self.pull, 2)}, limit {N_SIGMA})")


def jackknife(blocks, statistic):
    """``statistic`` of the summed blocks, and its jackknife error over the (independent) blocks."""
    blocks = np.asarray(blocks, dtype=float)
    total, n = blocks.sum(axis=0), len(blocks)
    if n < 2:
        raise ValueError("the jackknife needs at least 2 blocks")
    leave_one_out = np.array([statistic(total - block) for block in blocks])
    spread = ((leave_one_out - leave_one_out.mean(axis=0)) ** 2).sum(axis=0)
    return np.asarray(statistic(total), dtype=float), np.sqrt((n - 1) / n * spread)


def check(blocks, statistic, exact, n_sigma=N_SIGMA):
    """Every value of ``statistic`` within ``n_sigma`` jackknife errors of ``exact``?"""
    value, error = jackknife(blocks, statistic)
    exact = np.asarray(exact, dtype=float)
    return Verdict(value, error, exact, bool(np.all(np.abs(value - exact) < n_sigma * error)))


def check_counts(counts, statistic, exact, n_sigma=N_SIGMA):
    """``statistic`` of independent Poisson counts against ``exact``; the error by the delta method (var N = N).

    For counts the error is known, not estimated: no small-sample tails, so 5 sigma stays 5 sigma.
    """
    counts = np.asarray(counts, dtype=float)
    value = np.asarray(statistic(counts), dtype=float)
    variance = np.zeros_like(value)
    for i, n in enumerate(counts):
        step = np.zeros_like(counts)
        step[i] = 1e-3 * max(n, 1.0)
        variance += ((np.asarray(statistic(counts + step)) - value) / step[i]) ** 2 * n
    error, exact = np.sqrt(variance), np.asarray(exact, dtype=float)
    return Verdict(value, error, exact, bool(np.all(np.abs(value - exact) < n_sigma * error)))


def mean_of(block):
    """The statistic of :func:`binned` blocks: their mean."""
    return block[0] / block[1]


def binned(chains, n_bins=10):
    """Blocks ``(sum, count)`` of ``n_bins`` equal bins per independent chain (bins must outlast the autocorrelation)."""
    blocks = []
    for series in chains:
        series = np.asarray(series, dtype=float)
        size = len(series) // n_bins
        if size < 1:
            raise ValueError(f"{len(series)} measurements cannot fill {n_bins} bins")
        sums = series[: size * n_bins].reshape(n_bins, size).sum(axis=1)
        blocks += [(s, size) for s in sums]
    return np.array(blocks)


def check_mean(chains, exact, n_bins=10, n_sigma=N_SIGMA):
    """The mean of independent Monte Carlo chains (binned) against ``exact``."""
    return check(binned(chains, n_bins), mean_of, exact, n_sigma)

