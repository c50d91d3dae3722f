"""The one interface every bidding strategy implements, and the registry of strategies.

A strategy is scored by one evaluator whatever it is (a fixed rule, the MPC bidder, PPO
with MPC, the clairvoyant oracle). It follows stable-baselines3's ``predict`` signature so
that anything SB3 can score, we can score, plus two hooks SB3 policies do not need:

* :meth:`Strategy.reset` is called at the start of every episode with the unwrapped
  environment, so a strategy learns the campaign (budget, ROI target, arms, the action
  mapping), and with the prior market it may know in advance (``policies.prior``:
  fitted from two weeks of logs, a new product's channel averages, or the truth). Only
  the oracle may read ``env.market``, the episode's hidden truth.
* :meth:`Strategy.observe` receives every step's ``info`` (per-arm figures in currency),
  which is what a real advertiser sees in the platform's reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from envs import AdMarketEnv
from envs.errors import InputError
from envs.market import EpisodeMarket


class UnknownStrategyError(InputError):
    """A strategy name that is not registered."""


class Strategy(ABC):
    """Base class of all strategies. Subclasses implement :meth:`act`."""

    #: Name used on the command line and in reports.
    name: str = "strategy"

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        """Start an episode in ``env`` (the unwrapped environment).

        ``prior`` is what the strategy knows of the market before the first hour, over the
        campaign's hours (:mod:`policies.prior`); ``None`` gives the shock-free truth.
        """
        self.env = env
        if prior is None:
            from policies.prior import true_prior

            prior = true_prior(env.scenario)
        self.prior = prior

    def observe(self, info: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Receive the ``info`` of the step just taken."""

    @abstractmethod
    def act(self, observation: np.ndarray) -> np.ndarray:
        """The bids for the next hour, in CPM, one per arm."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """stable-baselines3-style: the normalised action for ``observation``."""
        return self.env.bids_to_action(self.act(observation)), state


_REGISTRY: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str) -> Callable[[Callable[..., Strategy]], Callable[..., Strategy]]:
    """Class decorator: make a strategy available by ``name`` to the CLI and evaluator."""

    def decorate(factory: Callable[..., Strategy]) -> Callable[..., Strategy]:
        _REGISTRY[name] = factory
        return factory

    return decorate


def strategy_names() -> list[str]:
    _load_builtin_strategies()
    return list(_REGISTRY)


def make_strategy(name: str, **kwargs: Any) -> Strategy:
    """A fresh strategy by registered name (``even``, ``pid``, ``mpc``, ...)."""
    _load_builtin_strategies()
    if name not in _REGISTRY:
        raise UnknownStrategyError(f"unknown strategy {name!r}; use one of {', '.join(_REGISTRY)}")
    strategy = _REGISTRY[name](**kwargs)
    strategy.name = name
    return strategy


def _load_builtin_strategies() -> None:
    # Imported for their registration side effect; late so that importing this module
    # stays cheap and free of cycles.
    import policies.baselines  # noqa: F401
    import policies.mpc_strategy  # noqa: F401
    import policies.ppo  # noqa: F401
