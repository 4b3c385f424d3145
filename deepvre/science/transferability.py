"""Transferability estimators: how well a frozen model's outputs suit a new labelled task, before
any fine-tuning (issue 18: "which model should I start from?").

- :func:`logme`: LogME (You et al., ICML 2021), the log maximum evidence of a Bayesian linear model
  from the features to each target, per sample, averaged over the targets (one-hot classes, or the
  columns of a regression target). Higher is better. The evidence is maximised over the prior
  precision alpha and the noise precision beta by the paper's fixed-point iteration, on the
  eigendecomposition of the smaller Gram matrix, until alpha/beta moves by under 1e-6 (the
  reference code: 1e-2, at most 11 steps). Where the features say nothing of a target the evidence
  keeps rising toward alpha -> infinity (no weights), and the value is where the iteration stopped.
- :func:`leep`: LEEP (Nguyen et al., ICML 2020), the average log-likelihood of the "expected empirical
  predictor" built from the source model's class probabilities. Needs a source classifier (its
  softmax over source labels); 0 is the best possible, more negative is worse.
"""

import numpy as np

EPSILON = 1e-5  # the reference implementation's guard in the alpha and beta updates


def _spectrum(features):
    """``(eigenvalues, projection)`` of F^T F through the smaller Gram matrix: ``projection(y)``
    gives the coordinates of F^T y in the eigenbasis, so every target reuses one decomposition."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    if n > d:
        s, v = np.linalg.eigh(f.T @ f)  # d x d
        s = np.clip(s, 0.0, None)
        return s, v, (lambda y: v.T @ (f.T @ y))
    s, u = np.linalg.eigh(f @ f.T)  # n x n: F^T F has the same non-zero eigenvalues
    s = np.clip(s, 0.0, None)
    keep = s > 1e-10 * max(s.max(), 1e-300)
    s, u = s[keep], u[:, keep]
    v = f.T @ u / np.sqrt(s)  # right singular vectors (d x k)
    return s, v, (lambda y: v.T @ (f.T @ y))


def evidence(features, y, alpha, beta):
    """Log evidence per sample of the Bayesian linear model y ~ N(F w, 1/beta), w ~ N(0, I/alpha):
    the closed form, for tests and for :func:`logme`'s final value."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    _, logdet = np.linalg.slogdet(a)
    fit = beta / 2 * np.sum((y - f @ m) ** 2) + alpha / 2 * np.sum(m * m)
    return float((d / 2 * np.log(alpha) + n / 2 * np.log(beta) - fit - logdet / 2 - n / 2 * np.log(2 * np.pi)) / n)


def _max_evidence(s, v, projected, y, f, n, d, steps=100, tol=1e-6):
    alpha, beta = 1.0, 1.0
    for _ in range(steps):
        gamma = float(np.sum(beta * s / (alpha + beta * s)))
        m = v @ (beta * projected / (alpha + beta * s))
        alpha_de, beta_de = float(m @ m), float(np.sum((y - f @ m) ** 2))
        new_alpha, new_beta = gamma / (alpha_de + EPSILON), (n - gamma) / (beta_de + EPSILON)
        done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    # the evidence at (alpha, beta), from the spectrum (the determinant of alpha I + beta F^T F)
    m = v @ (beta * projected / (alpha + beta * s))
    logdet = np.sum(np.log(alpha + beta * s)) + (d - len(s)) * np.log(alpha)
    fit = beta / 2 * np.sum((y - f @ m) ** 2) + alpha / 2 * float(m @ m)
    value = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - fit - logdet / 2 - n / 2 * np.log(2 * np.pi)) / n
    return float(value), alpha, beta


def max_evidence(features, y):
    """``(log evidence per sample, alpha, beta)`` at the fixed point for one target ``y`` (n,)."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(y, dtype=np.float64)
    s, v, project = _spectrum(f)
    return _max_evidence(s, v, project(y), y, f, *f.shape)


def logme(features, labels, regression=False):
    """LogME of ``features`` (n, d) for ``labels``: class indices (n,) or, with ``regression``,
    targets (n,) or (n, k). The mean over targets of the maximum log evidence per sample."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    n, d = f.shape
    if regression:
        targets = np.asarray(labels, dtype=np.float64).reshape(n, -1).T
    else:
        labels = np.asarray(labels).astype(int)
        if labels.min() < 0:
            raise ValueError("class labels must be 0..K-1")
        targets = [(labels == k).astype(np.float64) for k in range(labels.max() + 1)]
    s, v, project = _spectrum(f)
    return float(np.mean([_max_evidence(s, v, project(y), y, f, n, d)[0] for y in targets]))


def leep(source_probabilities, labels):
    """LEEP of a source classifier's probabilities ``theta`` (n, z) over its own labels, for the
    target ``labels`` (n,) in 0..K-1: (1/n) sum_i log sum_z P(y_i | z) theta_iz, with P(y | z) the
    empirical conditional of the target label given the source label."""
    theta = np.asarray(source_probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    if theta.ndim != 2 or len(theta) != len(labels):
        raise ValueError("source_probabilities must be (n, source classes) for n labels")
    joint = np.zeros((labels.max() + 1, theta.shape[1]))
    np.add.at(joint, labels, theta)
    joint /= len(labels)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)  # P(y | z)
    eep = theta @ conditional.T  # (n, K): the expected empirical predictor
    return float(np.mean(np.log(np.maximum(eep[np.arange(len(labels)), labels], 1e-300))))
