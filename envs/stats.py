"""Closed-form distribution helpers for the market, in plain numpy.

The market's clearing prices are log-normal; a bid ``b`` against a clearing price ``P``
wins when ``P < b`` and pays ``P`` (second price). Everything the market needs about that
auction (win probability, expected payment, payment variance) is a partial moment of a
log-normal, which reduces to the standard normal CDF. numpy has no ``erf``, so the CDF is
computed with a rational approximation whose absolute error is below 1.5e-7
(Abramowitz and Stegun 7.1.26), more than enough for a market model.
"""

from __future__ import annotations

import numpy as np

_P = 0.3275911
_A1, _A2, _A3, _A4, _A5 = 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429
_INV_SQRT2 = 0.7071067811865476
_SHIFTS = np.array([0.0, 1.0, 2.0])


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised, absolute error below 1.5e-7."""
    x = np.abs(z) * _INV_SQRT2
    t = 1.0 / (1.0 + _P * x)
    poly = ((((_A5 * t + _A4) * t + _A3) * t + _A2) * t + _A1) * t
    erf_abs = 1.0 - poly * np.exp(-x * x)
    return 0.5 + 0.5 * np.copysign(erf_abs, z)


def lognormal_auction(
    bid: np.ndarray, median: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Win probability and partial payment moments of a second-price bid.

    Args:
        bid: the bid per impression (any currency unit), shape (K,) or broadcastable.
        median: median clearing price, same unit.
        sigma: log-scale standard deviation of the clearing price.

    Returns:
        ``(win_prob, pay1, pay2)`` where ``win_prob = P(P < b)``,
        ``pay1 = E[P; P < b]`` (expected payment per opportunity) and
        ``pay2 = E[P^2; P < b]``. Divide by ``win_prob`` for the conditional moments.
    """
    sigma = np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore"):
        z = np.log(bid / median) / sigma
    # One CDF call for the three shifted arguments: the hot path of every market step.
    cdf = normal_cdf(z - _SHIFTS.reshape((3,) + (1,) * z.ndim) * sigma)
    s2 = sigma * sigma
    win_prob = cdf[0]
    pay1 = median * np.exp(0.5 * s2) * cdf[1]
    pay2 = median * median * np.exp(2.0 * s2) * cdf[2]
    return win_prob, pay1, pay2


# Rational approximation of the normal quantile (Acklam), relative error below 1.2e-9.
_PPF_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_PPF_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_PPF_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_PPF_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_ppf(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile for probabilities in (0, 1), vectorised."""
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1.0 - 1e-12)
    a, b, c, d = _PPF_A, _PPF_B, _PPF_C, _PPF_D
    q = p - 0.5
    r = q * q
    central = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    )
    tail_p = np.minimum(p, 1.0 - p)
    s = np.sqrt(-2.0 * np.log(tail_p))
    tail = (((((c[0] * s + c[1]) * s + c[2]) * s + c[3]) * s + c[4]) * s + c[5]) / (
        (((d[0] * s + d[1]) * s + d[2]) * s + d[3]) * s + 1.0
    )
    tail = np.where(p < 0.5, tail, -tail)
    return np.where(np.abs(q) <= 0.47575, central, tail)
