"""Auction shapes read from log rows (``bidder.auction_shape``): rows drawn from the
market's closed form with a known GSP ladder, gamma or brand-mixture prices give that
kind of shape back, with the response to the bid close to the truth; rows of one
log-normal auction give none."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bidder.auction_shape import AuctionShape, best_shape, fit_auction_shape


def rows(truth: AuctionShape, seed: int = 0, cells: int = 48, days: int = 18):
    """Log rows of one channel: per (arm, hour) cell a price level, per day a bid around
    it; the win rate and the price paid from the closed form of ``truth``, with
    measurement noise."""
    rng = np.random.default_rng(seed)
    n = cells * days
    cell = np.repeat(np.arange(cells), days)
    level = np.exp(rng.normal(3.3, 0.3, cells))[cell]
    bid = level * np.exp(rng.normal(0.0, 0.35, n))
    z, win_curve, log_rho_curve = truth.curves()
    at = np.log(bid / level)
    win = np.interp(at, z, win_curve)
    paid = np.exp(np.interp(at, z, log_rho_curve))
    impressions = rng.integers(1_000, 6_000, n).astype(float)
    q = np.clip(win * np.exp(rng.normal(0, 0.01, n)), 0.0, 1.0)
    paid = paid * np.exp(rng.normal(0, 0.005, n))
    keep = (q > 0.02) & (q < 0.98) & (paid < 1)
    return q[keep], paid[keep], impressions[keep], bid[keep], cell[keep]


def assert_same_response(fit: AuctionShape, truth: AuctionShape, q, bid) -> None:
    """Parameters of one shape can trade off against each other (a ladder's spread and
    its lower slots' exposure; the level with them); what must be right is the response
    to the bid: the win probability and the price paid at the bids the rows cover
    (within a factor 1.65 of the level)."""
    shift = float(np.mean(fit.log_scale(bid, q) - truth.log_scale(bid, q)))
    z, true_win, true_log_rho = truth.curves()
    fitted_z, win, log_rho = fit.curves()
    near = np.abs(z) <= 0.5
    at = z[near] - shift  # the same bids, against the fit's level
    assert np.abs(np.interp(at, fitted_z, win) - true_win[near]).max() < 0.03
    assert np.abs(np.interp(at, fitted_z, log_rho) - true_log_rho[near]).max() < 0.03


LADDER = AuctionShape(sigma=0.55, exposure=(1.0, 0.8, 0.6), price_ratio=0.7)
GAMMA = AuctionShape(family="gamma", sigma=0.6)
MIXTURE = AuctionShape(
    family="mixture", sigma=0.5, brand_share=0.25, brand_premium=3.5, brand_sigma=0.25
)


@pytest.mark.parametrize("truth", [LADDER, GAMMA, MIXTURE], ids=["ladder", "gamma", "mixture"])
def test_a_known_shape_is_recovered(truth):
    q, paid, impressions, bid, cell = rows(truth)
    fit = fit_auction_shape(q, paid, impressions, bid, cell)
    assert fit is not None
    assert fit.family == truth.family, fit
    assert len(fit.exposure) == len(truth.exposure), fit
    assert fit.clear and fit.consistency < 0.5 and fit.gain > 0.3, fit
    assert_same_response(fit, truth, q, bid)
    fields = fit.channel_fields()
    assert fields["price_family"] == truth.family
    assert (fields.get("auction") == "gsp") == (len(truth.exposure) > 1)


def test_a_ladders_ratio_is_recovered():
    q, paid, impressions, bid, cell = rows(LADDER)
    fit = fit_auction_shape(q, paid, impressions, bid, cell)
    assert abs(fit.price_ratio - 0.7) <= 0.1, fit


def test_one_log_normal_auction_is_not_read_as_another_shape():
    q, paid, impressions, bid, cell = rows(AuctionShape(sigma=0.5))
    assert fit_auction_shape(q, paid, impressions, bid, cell) is None
    best = best_shape(q, paid, impressions)
    assert abs(best.plain_sigma / 0.5 - 1) < 0.03  # the spread is pinned finely


def test_a_shape_that_only_mimics_the_curve_is_refused():
    # Gamma prices' price-paid curve is also fitted well by some ladder; that ladder
    # must not be kept where the gamma is not a candidate: its implied levels disagree.
    q, paid, impressions, bid, cell = rows(GAMMA)
    fit = fit_auction_shape(q, paid, impressions, bid, cell)
    mimic = dataclasses.replace(
        AuctionShape(sigma=1.2, exposure=(1.0, 0.5, 0.5), price_ratio=0.6), rows=len(q)
    )
    assert fit is not None and fit.family == "gamma"
    spread = []
    for model in (AuctionShape(sigma=fit.plain_sigma), mimic, fit):
        y = model.log_scale(bid, q)
        y = y - (np.bincount(cell, y) / np.bincount(cell))[cell]
        spread.append(float((y * y).mean()))
    assert spread[2] < 0.5 * spread[0] < spread[1]


#: real-world's feed: three GSP slots over prices with a block of brand campaigns.
LADDER_MIXTURE = dataclasses.replace(
    LADDER, family="mixture", brand_share=0.2, brand_premium=3.0, brand_sigma=0.25
)


def test_a_ladder_over_brand_mixture_prices_is_recovered():
    # Neither a ladder nor a mixture alone reads levels that agree across days here; the
    # two bends together do.
    q, paid, impressions, bid, cell = rows(LADDER_MIXTURE)
    best = best_shape(q, paid, impressions)
    assert best.family != "mixture" or len(best.exposure) == 1  # no simple kind is both
    fit = fit_auction_shape(q, paid, impressions, bid, cell)
    assert fit is not None
    assert fit.family == "mixture" and len(fit.exposure) == 3, fit
    assert fit.clear and fit.consistency < 0.5, fit
    assert abs(fit.price_ratio - 0.7) <= 0.1 and abs(fit.brand_share - 0.2) <= 0.1, fit
    assert_same_response(fit, LADDER_MIXTURE, q, bid)
    fields = fit.channel_fields()
    assert fields["auction"] == "gsp" and fields["price_family"] == "mixture"


def test_the_ladder_over_mixture_search_leaves_simple_shapes_alone():
    # Where a simple shape passes the consistency test, it is kept as it is.
    for truth in (LADDER, MIXTURE):
        fit = fit_auction_shape(*rows(truth, seed=1))
        assert fit is not None and fit.family == truth.family, fit
        assert len(fit.exposure) == len(truth.exposure), fit


@pytest.mark.parametrize("n", [0, 10, 49])
def test_too_few_rows_give_no_shape(n):
    q, paid, impressions, bid, cell = (v[:n] for v in rows(LADDER))
    assert best_shape(q, paid, impressions) is None
    assert fit_auction_shape(q, paid, impressions, bid, cell) is None
