"""``ppo-mpc``: a PPO policy chooses the MPC bidder's plan every hour.

The policy sees the campaign through :func:`PlannedMPCStrategy.features` and outputs the
plan action of :mod:`policies.planner_env`; the MPC bidder turns the plan into
bids, so the budget and the ROI target are enforced exactly as for MPC alone.
stable-baselines3 (and torch) are imported only when a policy is loaded, so listing
strategies stays cheap. Policy files hold tensors and validated settings only
(:mod:`policies.policy_file`, docs/security.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policies.planner_env import (
    FEATURE_NAMES,
    PlannedMPCStrategy,
    feature_indices,
)
from policies.policy_file import PolicyFileError, load_policy_network
from policies.strategy import Strategy, register_strategy

#: The shipped policy, produced by ``make train-default``.
DEFAULT_POLICY = Path(__file__).resolve().parent / "pretrained" / "ppo_mpc_default.safetensors"


def load_ppo_model(path: str | Path | None = None) -> Any:
    """The policy network stored at ``path`` (default: the shipped policy).

    The file is read as tensors and validated settings only (:mod:`policies.policy_file`);
    nothing in it can run code. The returned network has stable-baselines3's
    ``predict(observation, deterministic=...)``.

    Raises:
        PolicyFileError: the file is missing, unsafe, damaged or made for another planner.
    """
    path = Path(path) if path is not None else DEFAULT_POLICY
    if not path.exists():
        raise PolicyFileError(
            f"policy file {path} not found; train one with `autopilot train --out {path}` "
            "or `make train-default`"
        )
    return load_policy_network(path)


@register_strategy("ppo-mpc")
class PPOStrategy(PlannedMPCStrategy):
    """The PPO planner on top of the MPC bidder.

    Args:
        path: the policy .safetensors file (default: the shipped ``policies/pretrained`` policy).
        model: an already loaded network or PPO model (used instead of ``path``; the training code
            evaluates the model it is training this way).
        deterministic: act with the policy's mean action (true for evaluation).
    """

    def __init__(
        self, path: str | Path | None = None, model: Any = None, deterministic: bool = True
    ):
        super().__init__()
        self.model = model if model is not None else load_ppo_model(path)
        self.deterministic = deterministic
        # The features the policy reads (a loaded policy names them; a model in training
        # reads as many as its observation space holds, from the start of the list).
        names = getattr(self.model, "feature_names", None)
        if names is None:
            names = FEATURE_NAMES[: int(self.model.observation_space.shape[0])]
        self._features = feature_indices(names)

    def choose_action(self, features: np.ndarray) -> np.ndarray:
        observed = features[self._features]
        action, _ = self.model.predict(observed, deterministic=self.deterministic)
        return np.asarray(action, dtype=float)


def load_ppo_strategy(path: str | Path | None = None) -> Strategy:
    """A ``ppo-mpc`` strategy with the policy at ``path`` (default: the shipped one).

    Raises:
        PolicyFileError: the file is missing or unreadable (the CLI prints one line).
    """
    strategy = PPOStrategy(path=path)
    strategy.name = "ppo-mpc"
    return strategy
