"""The shape of a channel's auction read from hourly logs: GSP slot ladders and the
family of the clearing-price distribution.

In a second-price auction over one slot with log-normal prices, every log row's win rate
``q`` and price paid per won impression as a share of the bid, ``rho``, lie on one curve
``rho(q)`` fixed by the price spread alone: the price level only moves a row along it.
A GSP ladder (slot ``j``'s competing price is ``r^(j-1)`` times the top one, and an
impression there is shown, and paid, with probability ``e_j``) bends that curve: a low
bid still wins the lower slots, and a high one pays for the slots below. A heavy-tailed
price distribution (gamma, or log-normal prices with a block of brand campaigns on top)
bends it another way. So the shape of ``rho(q)`` across a channel's rows tells them
apart without knowing a single price level, and a day's budget or pacing only decides
where on the curve its rows fall.

:func:`fit_auction_shape` searches a grid of candidates, each evaluated with the
simulator's own closed form (:meth:`envs.mechanisms.Mechanism.auction_moments`): one
log-normal auction, ladders of two or three slots (the top one always shown) over
log-normal prices, one auction with gamma prices, and one with brand-mixture prices.
Each candidate's ``rho(q)`` is compared with the rows' in weighted least squares; the
best of each kind is refined around its grid point. A shape other than the plain
log-normal auction is kept only where it fits clearly better
(:data:`SHAPE_EVIDENCE`, :data:`SHAPE_MIN_GAIN`) and the price levels it implies agree
across the days of each (arm, hour) better than the plain auction's
(:data:`SHAPE_CONSISTENCY`): one shape can mimic another's curve, but then the levels it
reads from the win rates move with the bid. With the shape known, each row's price
level is where its win curve meets the row's win rate (:meth:`AuctionShape.log_scale`).

A ladder over brand-mixture prices (two bends at once) is searched wherever the curve
is clearly bent (:data:`LADDER_MIXTURE_EVIDENCE` says when it replaces a simpler shape
that passes the consistency test): its coarse
grid (:func:`_ladder_mixture_grid`) is scored by the profile likelihood of both residual
sets, the price-paid curve's and the implied levels' spread within (arm, hour) cells,
because on aggregate logs many such shapes bend ``rho(q)`` alike and only the levels
tell them apart.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from envs.mechanisms import GAMMA, GSP, LOGNORMAL, MIXTURE, auction_mechanism

#: Slot price ratios ``r`` searched.
SLOT_RATIOS = np.round(np.arange(0.3, 0.95, 0.1), 2)
#: Exposure probabilities of slots 2 and 3 searched (slot 1 is always shown).
SLOT_EXPOSURES = np.round(np.arange(0.2, 1.01, 0.1), 2)
#: Price spreads searched: log-normal sigma (also a mixture's tail), and gamma's
#: coefficient of variation (at most 1).
SIGMAS = np.geomspace(0.15, 1.6, 20)
GAMMA_CVS = np.geomspace(0.15, 1.0, 14)
#: Brand-mixture blocks searched: share of auctions, median premium, log-spread.
BRAND_SHARES = (0.1, 0.2, 0.3, 0.4)
BRAND_PREMIUMS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.5)
BRAND_SIGMAS = (0.15, 0.25, 0.4)
#: ``log(bid / price level)`` points on which each candidate's curves are tabulated.
_Z = np.linspace(-8.0, 8.0, 321)
#: A shape is kept when ``rows * log(SSE of one log-normal auction / SSE of the shape)``
#: reaches this (a Gaussian likelihood ratio; PID logs of log-normal presets give 0) ...
SHAPE_EVIDENCE = 50.0
#: ... and it removes at least this share of the plain auction's squared error ...
SHAPE_MIN_GAIN = 0.3
#: ... and the price levels it implies agree across days at least this much better
#: (within-cell variance, shape over the plain auction). On PID logs of the presets,
#: ladders that only mimic a heavy tail score 4-30 and the true shapes 0.03-0.55; real-
#: world's feed, a ladder over brand-mixture prices (not a candidate), 0.9 for every one.
SHAPE_CONSISTENCY = 0.75
#: Rows with fewer impressions count proportionally less (an hour of a few impressions
#: prices its bid poorly).
_FULL_WEIGHT_IMPRESSIONS = 500.0
_FAMILY_CODE = {"lognormal": LOGNORMAL, "gamma": GAMMA, "mixture": MIXTURE}


@dataclass(frozen=True)
class AuctionShape:
    """A channel's auction shape, and how it was chosen.

    Attributes:
        family: ``lognormal``, ``gamma`` or ``mixture`` (as ``Channel.price_family``).
        sigma: the log-normal (or a mixture's tail) log-spread; gamma's coefficient of
            variation. The price level is the median (log-normal, mixture) or the mean
            (gamma), as ``Channel.price_cpm``.
        exposure: per slot, the probability that an impression there is shown (slot 1
            first, always 1); one slot: a second-price auction.
        price_ratio: slot ``j``'s competing price is the top one times this ** (j - 1).
        brand_share, brand_premium, brand_sigma: the mixture's brand block.
        rows: log rows the fit used.
        evidence: ``rows * log(SSE plain auction / SSE this shape)``.
        gain: the share of the plain auction's squared error this shape removes.
        plain_sigma: the spread of the best plain log-normal auction.
        consistency: how far the price levels this shape implies spread within an
            (arm, hour) across days, over the plain auction's spread (NaN until
            :func:`fit_auction_shape` measures it).
    """

    family: str = "lognormal"
    sigma: float = 0.5
    exposure: tuple[float, ...] = (1.0,)
    price_ratio: float = 1.0
    brand_share: float = 0.0
    brand_premium: float = 1.0
    brand_sigma: float = 0.25
    rows: int = 0
    evidence: float = 0.0
    gain: float = 0.0
    plain_sigma: float = math.nan
    consistency: float = math.nan

    @property
    def plain(self) -> bool:
        """One second-price auction over log-normal prices."""
        return self.family == "lognormal" and len(self.exposure) == 1

    @property
    def clear(self) -> bool:
        """A shape other than the plain auction that fits the price paid clearly better
        and makes the implied price levels agree across days better too."""
        return (
            not self.plain
            and self.evidence >= SHAPE_EVIDENCE
            and self.gain >= SHAPE_MIN_GAIN
            and self.consistency <= SHAPE_CONSISTENCY
        )

    @property
    def _key(self) -> tuple:
        """Everything but the exposures (in which the curves are linear)."""
        return (
            self.family,
            self.sigma,
            self.price_ratio,
            self.brand_share,
            self.brand_premium,
            self.brand_sigma,
        )

    def channel_fields(self) -> dict:
        """The ``Channel`` fields of this shape (on a second-price channel)."""
        fields: dict = {"price_family": self.family, "price_sigma": self.sigma}
        if len(self.exposure) > 1:
            fields.update(
                auction="gsp", slot_exposure=self.exposure, slot_price_ratio=self.price_ratio
            )
        if self.family == "mixture":
            fields.update(
                brand_share=self.brand_share,
                brand_premium=self.brand_premium,
                brand_sigma=self.brand_sigma,
            )
        return fields

    def describe(self) -> str:
        """One phrase: what the shape is."""
        parts = []
        if len(self.exposure) > 1:
            parts.append(
                f"a GSP ladder of {len(self.exposure)} slots (exposure "
                f"{', '.join(f'{e:g}' for e in self.exposure)}, each slot's price "
                f"{self.price_ratio:g}x the one above)"
            )
        if self.family == "gamma":
            parts.append(f"gamma prices (coefficient of variation {self.sigma:.2f})")
        elif self.family == "mixture":
            parts.append(
                f"brand campaigns topping {self.brand_share:.0%} of auctions at "
                f"{self.brand_premium:g}x the median"
            )
        return " with ".join(parts) or f"one auction (log-spread {self.sigma:.2f})"

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(z, win, log_rho)`` at ``z = log(bid / price level)``: the exposed win
        probability and the log of the price paid per shown impression over the bid."""
        win, log_rho = _curves([self])
        return _Z, win[:, 0], log_rho[:, 0]

    def log_scale(self, bid: np.ndarray, win_rate: np.ndarray) -> np.ndarray:
        """Each row's log price level (median, or mean for gamma): ``log bid - z`` where
        this shape's win curve reaches the row's win rate."""
        z, win, _ = self.curves()
        keep = np.concatenate([[True], np.diff(win) > 1e-12])
        at = np.interp(np.asarray(win_rate, dtype=float), win[keep], z[keep])
        return np.log(np.maximum(np.asarray(bid, dtype=float), 1e-12)) - at


def _candidates() -> list[AuctionShape]:
    """The search grid: plain auctions, ladders, gamma and mixture auctions."""
    out = [AuctionShape(sigma=float(s)) for s in SIGMAS]
    for s, r, e2 in itertools.product(SIGMAS, SLOT_RATIOS, SLOT_EXPOSURES):
        base = AuctionShape(sigma=float(s), price_ratio=float(r))
        out.append(dataclasses.replace(base, exposure=(1.0, float(e2))))
        for e3 in SLOT_EXPOSURES[SLOT_EXPOSURES <= e2 + 1e-9]:
            out.append(dataclasses.replace(base, exposure=(1.0, float(e2), float(e3))))
    out += [AuctionShape(family="gamma", sigma=float(cv)) for cv in GAMMA_CVS]
    for s, share, premium, spread in itertools.product(
        SIGMAS, BRAND_SHARES, BRAND_PREMIUMS, BRAND_SIGMAS
    ):
        out.append(
            AuctionShape(
                family="mixture",
                sigma=float(s),
                brand_share=share,
                brand_premium=premium,
                brand_sigma=spread,
            )
        )
    return out


def _curves(shapes: list[AuctionShape]) -> tuple[np.ndarray, np.ndarray]:
    """Exposed win probability and ``log rho`` (price paid per shown impression over the
    bid) on :data:`_Z`, one column per shape, from the market's closed form.

    Both are linear in the slots' exposures, so the closed form is evaluated once per
    distinct rest of the shape with one slot shown at a time, and the shapes are
    combinations of those."""
    keys: dict[tuple, int] = {}
    for shape in shapes:
        keys[shape._key] = max(keys.get(shape._key, 0), len(shape.exposure))
    slots = max(keys.values())
    columns = [(key, j) for key, n in keys.items() for j in range(n)]
    column_of = {column: i for i, column in enumerate(columns)}
    n = len(columns)
    exposure = np.zeros((slots, n))
    for i, (_, j) in enumerate(columns):
        exposure[j, i] = 1.0

    def per_column(position: int) -> np.ndarray:
        return np.array([key[position] for key, _ in columns], dtype=float)

    family = np.array([_FAMILY_CODE[key[0]] for key, _ in columns])
    mechanism = dataclasses.replace(
        auction_mechanism(np.zeros(n, bool), per_column(1), np.zeros(n, int)),
        auction=np.full(n, GSP),
        exposure=exposure,
        slot_price=per_column(2)[None, :] ** np.arange(slots)[:, None],
        family=family,
        brand_share=per_column(3),
        brand_premium=per_column(4),
        brand_sigma=per_column(5),
    )
    bids = np.broadcast_to(np.exp(_Z)[:, None], (len(_Z), n))
    win_basis, pay_basis, _ = mechanism.auction_moments(bids, np.ones_like(bids))
    win = np.zeros((len(_Z), len(shapes)))
    pay = np.zeros((len(_Z), len(shapes)))
    for k, shape in enumerate(shapes):
        for j, e in enumerate(shape.exposure):
            i = column_of[(shape._key, j)]
            win[:, k] += e * win_basis[:, i]
            pay[:, k] += e * pay_basis[:, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rho = np.log(pay / (win * np.exp(_Z)[:, None]))
    return win, log_rho


#: Win rates on which every candidate's ``log rho`` is tabulated for the fit.
_Q = np.linspace(0.01, 0.99, 393)


def _table(shapes: list[AuctionShape], curves=None) -> np.ndarray:
    """Each shape's ``log rho`` at the win rates :data:`_Q`, (Q, shapes); NaN for a shape
    whose win rates do not span them. ``curves``: their :func:`_curves`, where known."""
    win, log_rho = _curves(shapes) if curves is None else curves
    table = np.full((len(_Q), len(shapes)), np.nan)
    for k in range(len(shapes)):
        ok = np.isfinite(log_rho[:, k])
        wk, rk = win[ok, k], log_rho[ok, k]
        rising = np.concatenate([[True], np.diff(wk) > 1e-12])
        wk, rk = wk[rising], rk[rising]
        if len(wk) >= 2 and wk[0] <= _Q[0] and wk[-1] >= _Q[-1]:
            table[:, k] = np.interp(_Q, wk, rk)
    return table


@functools.cache
def _grid() -> tuple[list[AuctionShape], np.ndarray]:
    """The search grid and its :func:`_table`, made once per process."""
    shapes = _candidates()
    return shapes, _table(shapes)


class _Rows:
    """One channel's rows, reduced to what the squared error of any tabulated shape
    needs: a row's prediction is a (1 - t, t) blend of two adjacent table rows, the same
    for every shape, so five weighted sums per table interval give every shape's error
    at once."""

    def __init__(self, q: np.ndarray, y: np.ndarray, w: np.ndarray):
        pos = (q - _Q[0]) / (_Q[1] - _Q[0])
        i = np.minimum(pos.astype(int), len(_Q) - 2)
        b = pos - i
        a = 1.0 - b
        cells = len(_Q) - 1

        def per_cell(values: np.ndarray) -> np.ndarray:
            return np.bincount(i, weights=w * values, minlength=cells)[:, None]

        self.yy = float((w * y * y).sum())
        self.ya, self.yb = per_cell(y * a), per_cell(y * b)
        self.aa, self.ab, self.bb = per_cell(a * a), per_cell(a * b), per_cell(b * b)

    def sse(self, table: np.ndarray) -> np.ndarray:
        """Each column's weighted squared error, in the table's precision (the sums are
        matrix-vector products)."""
        lo, hi = table[:-1], table[1:]

        def dot(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
            return (weights[:, 0].astype(table.dtype) @ values).astype(float)

        cross = dot(self.ya, lo) + dot(self.yb, hi)
        square = dot(self.aa, lo * lo) + dot(2.0 * self.ab, lo * hi) + dot(self.bb, hi * hi)
        sse = self.yy - 2.0 * cross + square
        return np.where(np.isfinite(sse), np.maximum(sse, 0.0), np.inf)


def _neighbours(shape: AuctionShape) -> list[AuctionShape]:
    """Shapes around a grid point: the spread within one grid step (21 points), and for
    a ladder its ratio and lower slots' exposures within half a grid step."""
    grid = GAMMA_CVS if shape.family == "gamma" else SIGMAS
    step = float(np.log(grid[1] / grid[0]))
    sigmas = shape.sigma * np.exp(np.linspace(-step, step, 21))
    if shape.family == "gamma":
        sigmas = sigmas[sigmas <= 1.0]
    half = 0.05
    ladders = [(shape.exposure, shape.price_ratio)]
    if len(shape.exposure) > 1:
        r0 = shape.price_ratio
        ratios = [r for r in (r0 - half, r0, r0 + half) if 0.05 <= r <= 0.95]
        lower = [
            [e for e in (x - half, x, x + half) if 0.05 <= e <= 1.0] for x in shape.exposure[1:]
        ]
        ladders = [
            ((1.0, *(round(e, 4) for e in tail)), round(r, 4))
            for r in ratios
            for tail in itertools.product(*lower)
            if all(a >= b - 1e-9 for a, b in itertools.pairwise(tail))
        ]
    return [
        dataclasses.replace(shape, exposure=e, price_ratio=r, sigma=float(s))
        for e, r in ladders
        for s in sigmas
    ]


def _refined(rows: _Rows, shape: AuctionShape) -> tuple[AuctionShape, float]:
    """The shape near ``shape`` with the least squared error, and that error: the data
    pin the curve far finer than the grid."""
    near = _neighbours(shape)
    sse = rows.sse(_table(near))
    best = int(np.argmin(sse))
    return near[best], float(sse[best])


def best_shape(
    win_rate: np.ndarray, paid_ratio: np.ndarray, impressions: np.ndarray
) -> AuctionShape | None:
    """The shape of the grid whose ``rho(q)`` fits one channel's rows best, clear or not
    (``None`` under 50 rows); ``consistency`` is left unmeasured.

    ``win_rate`` is each row's share of auction opportunities shown, ``paid_ratio`` its
    price paid per shown impression over its bid (in (0, 1)); rows outside the win rates
    0.02-0.98 should be left out by the caller (there the curve is flat). The best shape
    of each kind (plain, ladder, gamma, mixture) is refined (:func:`_refined`) before
    they are compared.
    """
    q = np.clip(np.asarray(win_rate, dtype=float), _Q[0], _Q[-1])
    y = np.log(np.asarray(paid_ratio, dtype=float))
    n = np.asarray(impressions, dtype=float)
    if len(q) < 50:
        return None
    rows = _Rows(q, y, n / (n + _FULL_WEIGHT_IMPRESSIONS))
    shapes, table = _grid()
    sse = rows.sse(table)
    kinds = np.array(
        [("ladder" if len(s.exposure) > 1 else s.family) for s in shapes], dtype=object
    )
    refined = {}
    for kind in ("lognormal", "ladder", "gamma", "mixture"):
        members = np.flatnonzero(kinds == kind)
        first = int(members[np.argmin(sse[members])])
        if math.isfinite(sse[first]):
            refined[kind] = _refined(rows, shapes[first])
    if "lognormal" not in refined:
        return None
    plain, plain_sse = refined["lognormal"]
    best, best_sse = min(refined.values(), key=lambda pair: pair[1])
    gain = float(1.0 - best_sse / plain_sse) if plain_sse > 0 else 0.0
    evidence = len(q) * math.log(max(plain_sse, 1e-300) / max(best_sse, 1e-300))
    return dataclasses.replace(
        best,
        sigma=round(best.sigma, 4),
        rows=len(q),
        evidence=round(evidence, 1),
        gain=round(gain, 4),
        plain_sigma=round(plain.sigma, 4),
    )


#: The ladder-over-mixture grid (:func:`_ladder_mixture_grid`): spreads, the ladders'
#: lower-slot exposures (a coarser step than :data:`SLOT_EXPOSURES`), the brand block's
#: spread (one value: the curve barely tells it apart).
LADDER_MIXTURE_SIGMAS = np.geomspace(0.2, 1.2, 10)
LADDER_MIXTURE_EXPOSURES = np.round(np.arange(0.2, 1.01, 0.2), 2)
LADDER_MIXTURE_BRAND_SIGMA = 0.25
#: Where a simple shape passes the consistency test, the ladder over mixture prices
#: replaces it only where it raises the joint log-likelihood of both residual sets by
#: this much per row: a brand block on top of a true ladder buys 0.07-0.2 (PID logs of
#: real-world's live, synthetic ladders), a true ladder over mixture prices read as a
#: ladder about 2.
LADDER_MIXTURE_EVIDENCE = 1.0
#: Of that grid, this many shapes with the least squared error on the price-paid curve
#: are scored on the implied levels' spread too.
LADDER_MIXTURE_SHORTLIST = 3000


@functools.cache
def _ladder_mixture_grid() -> tuple[list[AuctionShape], np.ndarray, np.ndarray]:
    """GSP ladders of two or three slots over brand-mixture prices, their :func:`_table`
    and their win curves on :data:`_Z` (both float32), made once per process on first
    use (a few seconds, about 100 MB)."""
    ladders = []
    for e2 in LADDER_MIXTURE_EXPOSURES:
        ladders.append((1.0, float(e2)))
        for e3 in LADDER_MIXTURE_EXPOSURES[LADDER_MIXTURE_EXPOSURES <= e2 + 1e-9]:
            ladders.append((1.0, float(e2), float(e3)))
    shapes = [
        AuctionShape(
            family="mixture",
            sigma=float(s),
            exposure=exposure,
            price_ratio=float(r),
            brand_share=share,
            brand_premium=premium,
            brand_sigma=LADDER_MIXTURE_BRAND_SIGMA,
        )
        for s in LADDER_MIXTURE_SIGMAS
        for r in SLOT_RATIOS
        for share, premium in itertools.product(BRAND_SHARES, BRAND_PREMIUMS)
        for exposure in ladders
    ]
    win, log_rho = _curves(shapes)
    return shapes, _table(shapes, (win, log_rho)).astype(np.float32), win.astype(np.float32)


def _level_spread(
    shapes: list[AuctionShape],
    bid: np.ndarray,
    win_rate: np.ndarray,
    cell: np.ndarray,
    win: np.ndarray | None = None,
) -> np.ndarray:
    """Per shape, the mean squared deviation of the log price levels it implies from
    their (arm, hour) cell's mean (``cell``: dense integer codes). ``win``: the shapes'
    win curves on :data:`_Z` (one column each), where known."""
    if win is None:
        win, _ = _curves(shapes)
    counts = np.bincount(cell)
    log_bid = np.log(np.maximum(bid, 1e-12))
    out = np.empty(len(shapes))
    for k in range(len(shapes)):
        keep = np.concatenate([[True], np.diff(win[:, k]) > 1e-12])
        y = log_bid - np.interp(win_rate, win[keep, k], _Z[keep])
        y = y - (np.bincount(cell, y) / counts)[cell]
        out[k] = float((y * y).mean())
    return out


def _ladder_mixture(
    rows: _Rows, bid: np.ndarray, win_rate: np.ndarray, cell: np.ndarray
) -> tuple[AuctionShape, float, float]:
    """The GSP ladder over brand-mixture prices that best explains both the price-paid
    curve and the implied levels' agreement across days, with its squared error and
    level spread.

    Both residual sets are Gaussian with unknown variances, so their joint profile
    likelihood is maximised by the least ``log SSE + log spread``. The grid's shortlist
    (the shapes with the least SSE) is scored so, then the best one's spread and ladder
    are refined the same way (:func:`_neighbours`)."""
    shapes, table, grid_win = _ladder_mixture_grid()
    # Shortlisted in single precision, then scored in double.
    shortlist = np.argsort(rows.sse(table))[:LADDER_MIXTURE_SHORTLIST]
    sse = np.full(len(shapes), np.inf)
    sse[shortlist] = rows.sse(table[:, shortlist].astype(float))
    candidates = [shapes[k] for k in shortlist]
    scores = []
    for group in (candidates, None):
        if group is None:  # the refinement around the shortlist's best
            group = _neighbours(candidates[int(np.argmin(scores[0][2]))])
            curves = _curves(group)
            group_sse = rows.sse(_table(group, curves))
            win = curves[0]
        else:
            group_sse = sse[shortlist]
            win = grid_win[:, shortlist].astype(float)
        spread = _level_spread(group, bid, win_rate, cell, win)
        with np.errstate(divide="ignore"):
            score = np.log(np.maximum(group_sse, 1e-300)) + np.log(np.maximum(spread, 1e-300))
        scores.append((group, group_sse, score, spread))
    group, group_sse, score, spread = min(scores, key=lambda s: float(np.min(s[2])))
    best = int(np.argmin(score))
    return group[best], float(group_sse[best]), float(spread[best])


@functools.cache
def _one_slot_grid() -> tuple[list[AuctionShape], np.ndarray]:
    """The grid's one-slot shapes (log-normal, gamma, mixture) and their win curves on
    :data:`_Z`, made once per process (the first-price family search)."""
    shapes = [s for s in _candidates() if len(s.exposure) == 1]
    return shapes, _curves(shapes)[0]


#: On a first-price channel, gamma prices are preferred to brand-mixture prices unless
#: the mixture's levels agree this much better still (the mixture has three more
#: parameters to follow the noise with).
MIXTURE_OVER_GAMMA = 0.75


def fit_first_price_family(
    win_rate: np.ndarray, bid: np.ndarray, cell: np.ndarray
) -> AuctionShape | None:
    """The price family of one first-price channel, or ``None`` where log-normal prices
    explain its rows as well or the rows are too few (under 50).

    A first-price winner pays its bid, so the price paid says nothing of the family; the
    win rate's response to the bid does. Across the days of each (arm, hour) cell, the
    price level a row implies (``log bid - z`` where the family's win curve meets its win
    rate) should agree whatever the bid: each family of the grid (log-normal spreads,
    gamma, brand mixtures; one slot) is scored by the implied levels' spread within cells,
    the best of each refined within a grid step, and a gamma or mixture family is kept
    where it makes the levels agree clearly better than any log-normal spread does
    (:data:`SHAPE_CONSISTENCY`, with ``rows * log`` of the ratio at least
    :data:`SHAPE_EVIDENCE`). ``evidence`` and ``consistency`` are those of the spreads.
    """
    q = np.asarray(win_rate, dtype=float)
    if len(q) < 50:
        return None
    bid = np.asarray(bid, dtype=float)
    cell = np.unique(np.asarray(cell), return_inverse=True)[1].reshape(-1)
    shapes, win = _one_slot_grid()
    spread = _level_spread(shapes, bid, q, cell, win)
    best = {}
    for kind in ("lognormal", "gamma", "mixture"):
        members = [k for k, s in enumerate(shapes) if s.family == kind]
        first = shapes[min(members, key=lambda k: spread[k])]
        near = _neighbours(first)
        near_spread = _level_spread(near, bid, q, cell)
        k = int(np.argmin(near_spread))
        best[kind] = (near[k], float(near_spread[k]))
    plain, plain_spread = best["lognormal"]
    shape, shape_spread = best["gamma"]
    if best["mixture"][1] < MIXTURE_OVER_GAMMA * shape_spread:
        shape, shape_spread = best["mixture"]
    if not (plain_spread > 0 and shape_spread > 0):
        return None
    consistency = shape_spread / plain_spread
    evidence = len(q) * math.log(plain_spread / shape_spread)
    if consistency > SHAPE_CONSISTENCY or evidence < SHAPE_EVIDENCE:
        return None
    return dataclasses.replace(
        shape,
        sigma=round(shape.sigma, 4),
        rows=len(q),
        evidence=round(evidence, 1),
        gain=round(1.0 - consistency, 4),
        plain_sigma=round(plain.sigma, 4),
        consistency=round(consistency, 4),
    )


def fit_auction_shape(
    win_rate: np.ndarray,
    paid_ratio: np.ndarray,
    impressions: np.ndarray,
    bid: np.ndarray,
    cell: np.ndarray,
) -> AuctionShape | None:
    """The shape of one second-price channel's auction, or ``None`` where the plain
    log-normal auction fits as well (:attr:`AuctionShape.clear`) or the rows are too
    few (under 50).

    ``bid`` is each row's bid and ``cell`` its (arm, hour of day) as an integer: rows of
    one cell meet about the same prices on every day, so the price level each row
    implies should agree across its cell's days, whatever the bids. A shape that bends
    the price-paid curve right but moves the implied levels apart is mimicking another
    (:data:`SHAPE_CONSISTENCY`).
    """
    shape = best_shape(win_rate, paid_ratio, impressions)
    if shape is None or shape.plain:
        return None
    bid = np.asarray(bid, dtype=float)
    win_rate = np.asarray(win_rate, dtype=float)
    cell = np.unique(np.asarray(cell), return_inverse=True)[1].reshape(-1)
    plain = AuctionShape(sigma=shape.plain_sigma)
    plain_spread, spread = _level_spread([plain, shape], bid, win_rate, cell)
    consistency = spread / plain_spread if plain_spread > 0 else math.inf
    shape = dataclasses.replace(shape, consistency=round(consistency, 4))
    if shape.evidence < SHAPE_EVIDENCE or shape.gain < SHAPE_MIN_GAIN:
        return None
    # The curve is clearly bent: a ladder over brand-mixture prices may explain it (and
    # the levels) better than any simple shape.
    q = np.clip(win_rate, _Q[0], _Q[-1])
    n = np.asarray(impressions, dtype=float)
    rows = _Rows(q, np.log(np.asarray(paid_ratio, dtype=float)), n / (n + _FULL_WEIGHT_IMPRESSIONS))
    plain_sse, shape_sse = rows.sse(_table([plain, shape]))
    both, both_sse, both_spread = _ladder_mixture(rows, bid, win_rate, cell)
    if shape.clear:
        # Joint log-likelihood of both residual sets, per row, over the simple shape's.
        gain = 0.5 * math.log(max(shape_sse * spread, 1e-300) / max(both_sse * both_spread, 1e-300))
        if gain < LADDER_MIXTURE_EVIDENCE:
            return shape
    both = dataclasses.replace(
        both,
        sigma=round(both.sigma, 4),
        rows=shape.rows,
        evidence=round(len(q) * math.log(max(plain_sse, 1e-300) / max(both_sse, 1e-300)), 1),
        gain=round(float(1.0 - both_sse / plain_sse) if plain_sse > 0 else 0.0, 4),
        plain_sigma=shape.plain_sigma,
        consistency=round(both_spread / plain_spread if plain_spread > 0 else math.inf, 4),
    )
    return both if both.clear else None
