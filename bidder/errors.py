"""Typed errors of the bidder."""

from envs.errors import InputError


class BidderInputError(InputError):
    """A campaign setting the bidder cannot work with (negative budget, NaN, ...)."""


class ROITargetUnreachable(InputError):
    """No allocation of the budget reaches the ROI target; the message gives the best ROI
    reachable so the user can lower the target or accept the shortfall."""

    def __init__(self, message: str, best_roi: float):
        super().__init__(message)
        self.best_roi = best_roi
