"""Does the ranking predict fine-tuning? (issue 18, item 2): Spearman's rank correlation between the
transferability scores of candidate base models and their fine-tuned test accuracy, per use case, with a
percentile-bootstrap interval, and the cases where it fails.

    rows = candidates_from(rank_result, {"mobilenet-v2-imagenet:1.0.0": 0.99, "random:...": 0.92, ...})
    study = validate({"biology": rows, "satellite": [...], ...})
    study["cases"]["biology"]     # {"rho", "low", "high", "n", "fails", "sentence", "candidates"}
    study["failures"]             # the cases whose interval does not lie above zero, with why

The accuracies come from each use case's notebook run once per candidate (``deepvre run`` with its
``base_model``/``base_version`` parameters; the random floor is the notebook's scratch arm), read from
the runs' ``metrics.json``. The bootstrap resamples the candidates (with replacement); with the three or
four candidates a case has, the interval is wide, and this module says so rather than hide it.
"""

import numpy as np

MIN_CANDIDATES = 3


def spearman(scores, accuracies):
    """Spearman's rho (ties averaged; ``nan`` when either side is constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(scores, float), np.asarray(accuracies, float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need as many accuracies as scores, at least two; got {len(x)} and {len(y)}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def bootstrap_spearman(scores, accuracies, level=0.95, resamples=2000, seed=0):
    """``{rho, low, high, n, resamples}``: rho and its percentile-bootstrap interval over the candidates
    (resamples where one side comes out constant have no rho and are left out; ``resamples`` says how
    many counted)."""
    x, y = np.asarray(scores, float), np.asarray(accuracies, float)
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    draws = [spearman(x[i], y[i]) for i in rng.integers(0, len(x), size=(resamples, len(x)))]
    draws = np.asarray([d for d in draws if not np.isnan(d)])
    if not len(draws):
        return {"rho": rho, "low": float("nan"), "high": float("nan"), "n": len(x), "resamples": 0}
    low, high = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    return {"rho": rho, "low": float(low), "high": float(high), "n": len(x), "resamples": int(len(draws))}


def candidates_from(result, accuracies, estimator="logme"):
    """``[{model, score, accuracy}]``: the rows of a :func:`deepvre.science.ranking.rank` answer that
    have a fine-tuned accuracy in ``accuracies`` (model -> test accuracy; the floor's key is its
    ``random:...`` name), scored by ``estimator`` (``logme``, ``leep`` or ``probe_accuracy``)."""
    rows = []
    for row in result["models"]:
        if row["model"] in accuracies and row.get(estimator) is not None:
            rows.append({"model": row["model"], "score": float(row[estimator]),
                         "accuracy": float(accuracies[row["model"]])})
    return rows


def validate(cases, level=0.95, resamples=2000, seed=0):
    """Per use case (``{case: [{model, score, accuracy}, ...]}``, at least :data:`MIN_CANDIDATES`
    candidates each): Spearman's rho with its interval, whether the case fails (the interval does not
    lie above zero) and a sentence; ``failures`` lists the failing cases."""
    study = {"cases": {}, "failures": []}
    for case, rows in cases.items():
        if len(rows) < MIN_CANDIDATES:
            raise ValueError(f"{case}: {len(rows)} candidate base models; the validation needs at least "
                             f"{MIN_CANDIDATES} (the ImageNet model, the project's own, the random floor)")
        out = bootstrap_spearman([r["score"] for r in rows], [r["accuracy"] for r in rows], level, resamples, seed)
        fails = not (out["low"] > 0)  # nan (no interval) fails too
        best_score = max(rows, key=lambda r: r["score"])["model"]
        best_accuracy = max(rows, key=lambda r: r["accuracy"])["model"]
        sentence = (f"rho {out['rho']:+.2f} [{out['low']:+.2f}, {out['high']:+.2f}] over {out['n']} candidates; "
                    f"top by score {best_score}, top by fine-tuned accuracy {best_accuracy}")
        if fails:
            sentence += "; fails: the interval does not lie above zero"
        study["cases"][case] = {**out, "fails": fails, "sentence": sentence, "candidates": list(rows)}
        if fails:
            study["failures"].append({"case": case, "why": sentence})
    return study
