"""GSP slot ladders read from hourly logs.

In a second-price auction over one slot with log-normal prices, every log row's win rate
``q`` and price paid per won impression as a share of the bid, ``rho``, lie on one curve
``rho(q)`` fixed by the price spread alone: the median price only moves a row along it.
A GSP ladder (slot ``j``'s competing price is ``r^(j-1)`` times the top one, and an
impression there is shown, and paid, with probability ``e_j``) bends that curve: a low
bid still wins the lower slots, and a high one pays for the slots below. So the shape of
``rho(q)`` across a channel's rows tells a ladder from a single auction without knowing a
single price level, and a day's budget or pacing only decides where on the curve its
rows fall.

:func:`fit_slots` searches a grid of ladders (one to three slots, the top one always
shown) and spreads, each evaluated with the simulator's own closed form
(:meth:`envs.mechanisms.Mechanism.auction_moments`), for the curve closest to the rows'
``log rho`` in weighted least squares. A ladder is kept only where it fits clearly
better than the best single auction (:data:`SLOT_EVIDENCE`, :data:`SLOT_MIN_GAIN`) and
the median prices it implies agree across the days of each (arm, hour) better than the
single auction's do (:data:`SLOT_CONSISTENCY`): a heavy-tailed price distribution can
bend the curve as a ladder does, but not that.
With the ladder known, each row's median price is where the ladder's win curve meets
the row's win rate (:meth:`SlotFit.log_median`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from envs.mechanisms import GSP, auction_mechanism

#: Slot price ratios ``r`` searched.
SLOT_RATIOS = np.round(np.arange(0.3, 0.95, 0.1), 2)
#: Exposure probabilities of slots 2 and 3 searched (slot 1 is always shown).
SLOT_EXPOSURES = np.round(np.arange(0.2, 1.01, 0.1), 2)
#: Price spreads (log-normal sigma) searched.
SLOT_SIGMAS = np.geomspace(0.15, 1.6, 20)
#: ``log(bid / median price)`` points on which each candidate's curves are tabulated.
_Z = np.linspace(-8.0, 8.0, 321)
#: A ladder is kept when ``rows * log(SSE of one slot / SSE of the ladder)`` reaches
#: this (a Gaussian likelihood ratio; PID logs of one-slot presets give under 10) ...
SLOT_EVIDENCE = 50.0
#: ... and it removes at least this share of the single auction's squared error.
SLOT_MIN_GAIN = 0.3
#: ... and the median prices it implies agree across days at least this much better
#: (within-cell variance, ladder over one auction): ladders that only mimic a heavy
#: tail (gamma or mixture prices) score 4-30 on the presets, true ladders 0.03-0.3.
SLOT_CONSISTENCY = 0.5
#: Rows with fewer impressions count proportionally less (an hour of a few impressions
#: prices its bid poorly).
_FULL_WEIGHT_IMPRESSIONS = 500.0


@dataclass(frozen=True)
class SlotFit:
    """The ladder that fits a channel's rows best.

    Attributes:
        exposure: per slot, the probability that an impression there is shown (slot 1
            first, always 1).
        price_ratio: slot ``j``'s competing price is the top one times this ** (j - 1).
        sigma: log-spread of the top competing price.
        rows: log rows the fit used.
        evidence: ``rows * log(SSE one slot / SSE ladder)``.
        gain: the share of the single auction's squared error the ladder removes.
        single_sigma: the spread of the best single auction, for the report.
        consistency: how far the median prices the ladder implies spread within an
            (arm, hour) across days, over the single auction's spread (NaN until
            :func:`fit_slots` measures it).
    """

    exposure: tuple[float, ...]
    price_ratio: float
    sigma: float
    rows: int
    evidence: float
    gain: float
    single_sigma: float
    consistency: float = math.nan

    @property
    def clear(self) -> bool:
        """A ladder of two or more slots that fits the price paid clearly better than one
        auction and makes the implied prices agree across days better too."""
        return (
            len(self.exposure) > 1
            and self.evidence >= SLOT_EVIDENCE
            and self.gain >= SLOT_MIN_GAIN
            and self.consistency <= SLOT_CONSISTENCY
        )

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(z, win, log_rho)`` at ``z = log(bid / median)``: the exposed win probability
        and the log of the price paid per shown impression over the bid."""
        win, log_rho = _curves([self.exposure], [self.price_ratio], [self.sigma])
        return _Z, win[:, 0], log_rho[:, 0]

    def log_median(self, bid: np.ndarray, win_rate: np.ndarray) -> np.ndarray:
        """Each row's log median top competing price: ``log bid - z`` where the ladder's
        win curve reaches the row's win rate."""
        z, win, _ = self.curves()
        keep = np.concatenate([[True], np.diff(win) > 1e-12])
        at = np.interp(np.asarray(win_rate, dtype=float), win[keep], z[keep])
        return np.log(np.maximum(np.asarray(bid, dtype=float), 1e-12)) - at


def _candidates() -> tuple[list[tuple[float, ...]], list[float], list[float]]:
    """Every ladder of the grid with every spread: one slot, then two, then three."""
    ladders: list[tuple[tuple[float, ...], float]] = [((1.0,), 1.0)]
    for r in SLOT_RATIOS:
        for e2 in SLOT_EXPOSURES:
            ladders.append(((1.0, float(e2)), float(r)))
            for e3 in SLOT_EXPOSURES[SLOT_EXPOSURES <= e2 + 1e-9]:
                ladders.append(((1.0, float(e2), float(e3)), float(r)))
    exposure, ratio, sigma = [], [], []
    for s in SLOT_SIGMAS:
        for e, r in ladders:
            exposure.append(e)
            ratio.append(r)
            sigma.append(float(s))
    return exposure, ratio, sigma


def _curves(
    exposure: list[tuple[float, ...]], ratio: list[float], sigma: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Exposed win probability and ``log rho`` (price paid per shown impression over the
    bid) on :data:`_Z`, one column per candidate, from the market's closed form.

    Both are linear in the slots' exposures, so the closed form is evaluated once per
    distinct (spread, ratio) with one slot shown at a time, and the candidates are
    combinations of those."""
    pairs = list(dict.fromkeys(zip(sigma, ratio, strict=True)))
    slots = max(len(e) for e in exposure)
    n = len(pairs) * slots
    e = np.zeros((slots, n))
    for j in range(slots):
        e[j, j::slots] = 1.0
    pair_sigma = np.repeat([p[0] for p in pairs], slots)
    pair_ratio = np.repeat([p[1] for p in pairs], slots)
    mechanism = dataclasses.replace(
        auction_mechanism(np.zeros(n, bool), pair_sigma, np.zeros(n, int)),
        auction=np.full(n, GSP),
        exposure=e,
        slot_price=pair_ratio[None, :] ** np.arange(slots)[:, None],
    )
    bids = np.broadcast_to(np.exp(_Z)[:, None], (len(_Z), n))
    win_basis, pay_basis, _ = mechanism.auction_moments(bids, np.ones_like(bids))
    index = {pair: i for i, pair in enumerate(pairs)}
    columns = np.array([index[pair] for pair in zip(sigma, ratio, strict=True)])
    weights = np.zeros((len(exposure), slots))
    for k, one in enumerate(exposure):
        weights[k, : len(one)] = one
    shape = (len(_Z), len(pairs), slots)
    win = np.einsum("zks,ks->zk", win_basis.reshape(shape)[:, columns], weights)
    pay = np.einsum("zks,ks->zk", pay_basis.reshape(shape)[:, columns], weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rho = np.log(pay / (win * np.exp(_Z)[:, None]))
    return win, log_rho


#: Win rates on which every candidate's ``log rho`` is tabulated for the fit.
_Q = np.linspace(0.01, 0.99, 393)
_TABLE: tuple | None = None


def _table(exposure: list[tuple[float, ...]], ratio: list[float], sigma: list[float]) -> np.ndarray:
    """Each candidate's ``log rho`` at the win rates :data:`_Q`, (Q, candidates); NaN for
    a candidate whose win rates do not span them."""
    win, log_rho = _curves(exposure, ratio, sigma)
    table = np.full((len(_Q), len(exposure)), np.nan)
    for k in range(len(exposure)):
        ok = np.isfinite(log_rho[:, k])
        wk, rk = win[ok, k], log_rho[ok, k]
        rising = np.concatenate([[True], np.diff(wk) > 1e-12])
        wk, rk = wk[rising], rk[rising]
        if len(wk) >= 2 and wk[0] <= _Q[0] and wk[-1] >= _Q[-1]:
            table[:, k] = np.interp(_Q, wk, rk)
    return table


def _candidate_table() -> tuple[list[tuple[float, ...]], list[float], list[float], np.ndarray]:
    """The grid's candidates and their :func:`_table`, made once per process."""
    global _TABLE
    if _TABLE is None:
        exposure, ratio, sigma = _candidates()
        _TABLE = (exposure, ratio, sigma, _table(exposure, ratio, sigma))
    return _TABLE


class _Rows:
    """One channel's rows, reduced to what the squared error of any tabulated candidate
    needs: a row's prediction is a (1 - t, t) blend of two adjacent table rows, the same
    for every candidate, so five weighted sums per table interval give every
    candidate's error at once."""

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
        lo, hi = table[:-1], table[1:]
        cross = (self.ya * lo + self.yb * hi).sum(axis=0)
        square = (self.aa * lo * lo + 2.0 * self.ab * lo * hi + self.bb * hi * hi).sum(axis=0)
        sse = self.yy - 2.0 * cross + square
        return np.where(np.isfinite(sse), np.maximum(sse, 0.0), np.inf)


def _refined(
    rows: _Rows, exposure: tuple[float, ...], ratio: float, sigma: float
) -> tuple[tuple[float, ...], float, float, float]:
    """The candidate near a grid point with the least squared error, and that error: the
    spread within one grid step (21 points), and for a ladder its ratio and lower slots'
    exposures within half a grid step. The data pin the curve far finer than the grid."""
    step = float(np.log(SLOT_SIGMAS[1] / SLOT_SIGMAS[0]))
    sigmas = sigma * np.exp(np.linspace(-step, step, 21))
    half = 0.05
    if len(exposure) == 1:
        ladders = [(exposure, ratio)]
    else:
        ratios = [r for r in (ratio - half, ratio, ratio + half) if 0.05 <= r <= 0.95]
        lower = [[e for e in (x - half, x, x + half) if 0.05 <= e <= 1.0] for x in exposure[1:]]
        ladders = [
            ((1.0, *tail), r)
            for r in ratios
            for tail in np.array(np.meshgrid(*lower)).reshape(len(lower), -1).T.tolist()
            if all(a >= b - 1e-9 for a, b in zip(tail, tail[1:], strict=False))
        ]
    candidates = [(tuple(e), r, float(s)) for e, r in ladders for s in sigmas]
    sse = rows.sse(_table(*(list(v) for v in zip(*candidates, strict=True))))
    best = int(np.argmin(sse))
    e, r, s = candidates[best]
    return tuple(round(v, 4) for v in e), round(r, 4), s, float(sse[best])


def best_ladder(
    win_rate: np.ndarray, paid_ratio: np.ndarray, impressions: np.ndarray
) -> SlotFit | None:
    """The best candidate of the grid for one channel's rows, clear or not (``None``
    under 50 rows).

    ``win_rate`` is each row's share of auction opportunities shown, ``paid_ratio`` its
    price paid per shown impression over its bid (in (0, 1)); rows outside the win rates
    0.02-0.98 should be left out by the caller (there the curve is flat). The best single
    auction and the best ladder of the grid each get their spread refined
    (:func:`_refined`) before they are compared.
    """
    q = np.clip(np.asarray(win_rate, dtype=float), _Q[0], _Q[-1])
    y = np.log(np.asarray(paid_ratio, dtype=float))
    n = np.asarray(impressions, dtype=float)
    if len(q) < 50:
        return None
    rows = _Rows(q, y, n / (n + _FULL_WEIGHT_IMPRESSIONS))
    exposure, ratio, sigma, table = _candidate_table()
    sse = rows.sse(table)
    single = np.array([len(e) == 1 for e in exposure])
    one = int(np.flatnonzero(single)[np.argmin(sse[single])])
    ladder = int(np.flatnonzero(~single)[np.argmin(sse[~single])])
    if not (math.isfinite(sse[one]) and math.isfinite(sse[ladder])):
        return None
    _, _, one_sigma, one_sse = _refined(rows, exposure[one], ratio[one], sigma[one])
    refined = _refined(rows, exposure[ladder], ratio[ladder], sigma[ladder])
    if refined[3] < one_sse:
        best_exposure, best_ratio, best_sigma, best_sse = refined
    else:
        best_exposure, best_ratio, best_sigma, best_sse = (1.0,), 1.0, one_sigma, one_sse
    gain = float(1.0 - best_sse / one_sse) if one_sse > 0 else 0.0
    evidence = len(q) * math.log(max(one_sse, 1e-300) / max(best_sse, 1e-300))
    return SlotFit(
        exposure=best_exposure,
        price_ratio=best_ratio,
        sigma=round(best_sigma, 4),
        rows=len(q),
        evidence=round(evidence, 1),
        gain=round(gain, 4),
        single_sigma=round(one_sigma, 4),
    )


def fit_slots(
    win_rate: np.ndarray,
    paid_ratio: np.ndarray,
    impressions: np.ndarray,
    bid: np.ndarray,
    cell: np.ndarray,
) -> SlotFit | None:
    """The GSP ladder behind one channel's rows, or ``None`` where a single second-price
    auction fits as well (:attr:`SlotFit.clear`) or the rows are too few (under 50).

    ``bid`` is each row's bid and ``cell`` its (arm, hour of day) as an integer: rows of
    one cell meet about the same prices on every day, so the median price each row
    implies should agree across its cell's days, whatever the bids. A ladder that bends
    the price-paid curve right but moves the implied prices apart is a heavy-tailed
    price distribution mimicking slots (:data:`SLOT_CONSISTENCY`).
    """
    fit = best_ladder(win_rate, paid_ratio, impressions)
    if fit is None or len(fit.exposure) == 1:
        return None
    one = SlotFit((1.0,), 1.0, fit.single_sigma, fit.rows, 0.0, 0.0, fit.single_sigma)
    cell = np.unique(np.asarray(cell), return_inverse=True)[1].reshape(-1)
    counts = np.bincount(cell)
    spread = []
    for model in (one, fit):
        y = model.log_median(bid, win_rate)
        y = y - (np.bincount(cell, y) / counts)[cell]
        spread.append(float((y * y).mean()))
    consistency = spread[1] / spread[0] if spread[0] > 0 else math.inf
    fit = dataclasses.replace(fit, consistency=round(consistency, 4))
    return fit if fit.clear else None
