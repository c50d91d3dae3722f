"""``ppo-mpc``: a PPO policy chooses the MPC bidder's plan every hour.

The policy sees the campaign through :func:`PlannedMPCStrategy.features` and outputs the
plan action of :mod:`policies.planner_env`; the MPC bidder turns the plan into
bids, so the budget and the ROI target are enforced exactly as for MPC alone.
stable-baselines3 (and torch) are imported only when a policy is loaded, so listing
strategies stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.errors import InputError
from policies.planner_env import N_ACTIONS, N_FEATURES, PlannedMPCStrategy
from policies.strategy import Strategy, register_strategy

#: The shipped policy, produced by ``make train-default``.
DEFAULT_POLICY = Path(__file__).resolve().parent / "pretrained" / "ppo_mpc_default.zip"


class PolicyFileError(InputError):
    """A policy file that is missing or is not a stable-baselines3 PPO zip."""


def load_ppo_model(path: str | Path | None = None) -> Any:
    """The stable-baselines3 PPO model stored at ``path`` (default: the shipped policy)."""
    path = Path(path) if path is not None else DEFAULT_POLICY
    if not path.is_file():
        raise PolicyFileError(
            f"policy file {path} not found; train one with `autopilot train --out {path}` "
            "or `make train-default`"
        )
    from stable_baselines3 import PPO

    try:
        model = PPO.load(path, device="cpu")
    except Exception as err:  # SB3 raises many kinds for a bad zip
        raise PolicyFileError(
            f"policy file {path} could not be read as a PPO policy ({type(err).__name__}: "
            f"{err}); give a .zip written by `autopilot train`"
        ) from err
    seen, acts = model.observation_space.shape, model.action_space.shape
    if seen != (N_FEATURES,) or acts != (N_ACTIONS,):
        raise PolicyFileError(
            f"policy file {path} was trained for {seen[0] if seen else '?'} features and "
            f"{acts[0] if acts else '?'} plan entries, this planner has {N_FEATURES} and "
            f"{N_ACTIONS}; retrain it with `autopilot train` (or `make train-default`)"
        )
    return model


@register_strategy("ppo-mpc")
class PPOStrategy(PlannedMPCStrategy):
    """The PPO planner on top of the MPC bidder.

    Args:
        path: the policy .zip (default: the shipped ``policies/pretrained`` policy).
        model: an already loaded PPO model (used instead of ``path``; the training code
            evaluates the model it is training this way).
        deterministic: act with the policy's mean action (true for evaluation).
    """

    def __init__(
        self, path: str | Path | None = None, model: Any = None, deterministic: bool = True
    ):
        super().__init__()
        self.model = model if model is not None else load_ppo_model(path)
        self.deterministic = deterministic

    def choose_action(self, features: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(features, deterministic=self.deterministic)
        return np.asarray(action, dtype=float)


def load_ppo_strategy(path: str | Path | None = None) -> Strategy:
    """A ``ppo-mpc`` strategy with the policy at ``path`` (default: the shipped one).

    Raises:
        PolicyFileError: the file is missing or unreadable (the CLI prints one line).
    """
    strategy = PPOStrategy(path=path)
    strategy.name = "ppo-mpc"
    return strategy
