"""The plan: what the policy controls and the MPC layer turns into bids.

See ``docs/bidder.md``. The neutral plan (:meth:`Plan.neutral`) is "MPC alone".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: An action entry of +-1 tilts an arm's value by this factor up or down.
TILT_RANGE = 2.0
#: An action entry of +-1 moves the ROI safety margin by this much (relative).
ROI_MARGIN_RANGE = 0.15


@dataclass(frozen=True)
class Plan:
    """A plan for the MPC bidder.

    Attributes:
        tilts: per-arm multipliers (> 0) of predicted value in the MPC objective; the
            constraints always use the unshaped predictions, so a tilt moves money
            between arms but can never break the budget or the ROI target. ``None``
            means 1 for every arm.
        pacing: in [-1, 1]; how much to commit now versus later. The value of the
            current hour is weighted by ``2 ** pacing`` against later hours: +1 spends
            more now, -1 saves budget for later, 0 is neutral.
        roi_margin: relative safety margin on the ROI target, added to the bidder's own:
            the constraint uses ``roi_target * (1 + margin)``. In [-0.15, 0.5].
    """

    tilts: np.ndarray | None = None
    pacing: float = 0.0
    roi_margin: float = 0.0

    def __post_init__(self) -> None:
        if self.tilts is not None:
            tilts = np.asarray(self.tilts, dtype=float)
            if not np.all(np.isfinite(tilts)) or np.any(tilts <= 0):
                raise ValueError("plan tilts must be finite and positive")
            object.__setattr__(self, "tilts", tilts)
        if not (math.isfinite(self.pacing) and -1.0 <= self.pacing <= 1.0):
            raise ValueError(f"plan pacing {self.pacing!r} must lie in [-1, 1]")
        if not (math.isfinite(self.roi_margin) and -0.15 <= self.roi_margin <= 0.5):
            raise ValueError(f"plan roi_margin {self.roi_margin!r} must lie in [-0.15, 0.5]")

    @classmethod
    def neutral(cls) -> Plan:
        return cls()

    @staticmethod
    def action_size(n_arms: int) -> int:
        return n_arms + 2

    @classmethod
    def from_action(cls, action: np.ndarray) -> Plan:
        """The plan for a normalised action in [-1, 1]^(K + 2): K tilts, pacing, margin."""
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=float)), -1.0, 1.0)
        return cls(
            tilts=TILT_RANGE ** a[:-2],
            pacing=float(a[-2]),
            roi_margin=ROI_MARGIN_RANGE * float(a[-1]),
        )

    def tilt_vector(self, n_arms: int) -> np.ndarray:
        return np.ones(n_arms) if self.tilts is None else self.tilts
