"""GSP slot ladders read from log rows (``bidder.slots``): rows drawn from the market's
closed form with a known ladder give that ladder back; rows of one auction, or of one
auction with heavy-tailed prices, give none."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bidder.slots import best_ladder, fit_slots
from envs.mechanisms import GAMMA, GSP, auction_mechanism


def rows(
    exposure: tuple[float, ...],
    ratio: float,
    sigma: float,
    family: int | None = None,
    seed: int = 0,
    cells: int = 48,
    days: int = 18,
):
    """Log rows of one channel: per (arm, hour) cell a median price, per day a bid around
    it; the win rate and the price paid from the closed form, with measurement noise."""
    rng = np.random.default_rng(seed)
    n = cells * days
    slots = len(exposure)
    mechanism = auction_mechanism(np.zeros(1, bool), np.array([sigma]), np.zeros(1, int))
    mechanism = dataclasses.replace(
        mechanism,
        auction=np.array([GSP]),
        exposure=np.array(exposure, dtype=float)[:, None],
        slot_price=(ratio ** np.arange(slots))[:, None],
        **({"family": np.array([family])} if family is not None else {}),
    )
    cell = np.repeat(np.arange(cells), days)
    median = np.exp(rng.normal(3.3, 0.3, cells))[cell]
    bid = median * np.exp(rng.normal(0.0, 0.35, n))
    win, pay, _ = mechanism.auction_moments(bid[:, None], median[:, None])
    win, pay = win[:, 0], pay[:, 0]
    impressions = rng.integers(1_000, 6_000, n).astype(float)
    q = np.clip(win * np.exp(rng.normal(0, 0.01, n)), 0.0, 1.0)
    paid = pay / (win * bid) * np.exp(rng.normal(0, 0.005, n))
    keep = (q > 0.02) & (q < 0.98) & (paid < 1)
    return q[keep], paid[keep], impressions[keep], bid[keep], cell[keep]


def test_a_three_slot_ladder_is_recovered():
    q, paid, impressions, bid, cell = rows((1.0, 0.8, 0.6), 0.7, 0.55)
    fit = fit_slots(q, paid, impressions, bid, cell)
    assert fit is not None
    assert len(fit.exposure) == 3
    assert abs(fit.price_ratio - 0.7) <= 0.1, fit
    assert fit.clear and fit.consistency < 0.5 and fit.gain > 0.5
    # The spread trades off against the lower slots' exposure (and the median price
    # with them); what must be right is the response to the bid: the win probability
    # and the price paid at the bids the rows cover (within a factor 1.65 of the median).
    truth = dataclasses.replace(fit, exposure=(1.0, 0.8, 0.6), price_ratio=0.7, sigma=0.55)
    shift = float(np.mean(fit.log_median(bid, q) - truth.log_median(bid, q)))
    z, true_win, true_log_rho = truth.curves()
    fitted_z, win, log_rho = fit.curves()
    near = np.abs(z) <= 0.5
    at = z[near] - shift  # the same bids, against the fit's median
    assert np.abs(np.interp(at, fitted_z, win) - true_win[near]).max() < 0.03
    assert np.abs(np.interp(at, fitted_z, log_rho) - true_log_rho[near]).max() < 0.03


def test_one_auction_is_not_read_as_a_ladder():
    q, paid, impressions, bid, cell = rows((1.0,), 1.0, 0.5)
    assert fit_slots(q, paid, impressions, bid, cell) is None
    best = best_ladder(q, paid, impressions)
    assert abs(best.single_sigma / 0.5 - 1) < 0.03  # the spread is pinned finely


def test_heavy_tailed_prices_are_not_read_as_a_ladder():
    q, paid, impressions, bid, cell = rows((1.0,), 1.0, 0.7, family=GAMMA)
    # The price-paid curve alone prefers some ladder over a log-normal auction ...
    assert len(best_ladder(q, paid, impressions).exposure) > 1
    # ... but the prices it implies disagree across days: refused.
    assert fit_slots(q, paid, impressions, bid, cell) is None


@pytest.mark.parametrize("n", [0, 10, 49])
def test_too_few_rows_give_no_ladder(n):
    q, paid, impressions, bid, cell = (v[:n] for v in rows((1.0, 0.8, 0.6), 0.7, 0.55))
    assert best_ladder(q, paid, impressions) is None
    assert fit_slots(q, paid, impressions, bid, cell) is None
