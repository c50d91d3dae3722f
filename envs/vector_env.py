"""``AdMarketVectorEnv``: many campaigns of one scenario stepped as one Gymnasium vector env.

Each preset's id names it as its ``vector_entry_point``, so
``gymnasium.make_vec("AdMarket-Default-v0", num_envs=64)`` builds it rather than
wrapping 64 environments in ``SyncVectorEnv``.

Every campaign keeps its own market and its own random streams
(:class:`~envs.market.HourlyStreams`), so campaign ``i`` of a vector reset with seed ``s``
meets, draw for draw, the episode an :class:`~envs.market_env.AdMarketEnv` reset with
seed ``s + i`` meets (the seeding ``SyncVectorEnv`` uses), whatever the other campaigns
bid; a test checks it against ``SyncVectorEnv`` step by step. What is batched is the
rest: one array of actions in, observations, rewards and flags written into arrays
allocated once, and the info of all campaigns gathered key by key, instead of a
wrapper's per-environment copies and merges. The hourly draws are the floor of a step:
numpy's samplers cost about 10 us a call whatever their size, and keeping each
campaign's draws means six calls per campaign and hour (docs/performance.md).

Autoreset follows Gymnasium's default (``AutoresetMode.NEXT_STEP``): the step after a
campaign ends resets it, returns its first observation with reward 0, and ignores its
action.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.market_env import AdMarketEnv
from envs.scenario import Scenario


class AdMarketVectorEnv(VectorEnv):
    """``num_envs`` campaigns of one scenario (a Scenario, preset name or TOML path)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: Scenario | str = "default",
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs = {num_envs!r}: give a whole number of campaigns >= 1")
        if max_episode_steps is not None:
            raise ValueError(
                "max_episode_steps: campaigns end on their own horizon; leave it unset"
            )
        self.envs = [AdMarketEnv(scenario) for _ in range(num_envs)]
        first = self.envs[0]
        self.scenario = first.scenario
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._observations = np.zeros(self.observation_space.shape, dtype=np.float32)
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._terminations = np.zeros(num_envs, dtype=np.bool_)
        self._truncations = np.zeros(num_envs, dtype=np.bool_)
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ):
        """Reset every campaign; an int seeds campaign ``i`` with ``seed + i``."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(
                    f"seed: {len(seeds)} seeds for {self.num_envs} campaigns; give one each "
                    "or one int"
                )
        infos = []
        for i, (env, one) in enumerate(zip(self.envs, seeds, strict=True)):
            self._observations[i], info = env.reset(seed=one, options=options)
            infos.append(info)
        self._autoreset[:] = False
        return self._observations.copy(), self._gather(infos)

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        if actions.shape != self.action_space.shape:
            raise ValueError(
                f"actions of shape {actions.shape}: give one row of {self.envs[0].n_arms} "
                f"bids per campaign, shape {self.action_space.shape}"
            )
        infos = []
        observations, rewards = self._observations, self._rewards
        for i, env in enumerate(self.envs):
            if self._autoreset[i]:
                observations[i], info = env.reset()
                rewards[i] = 0.0
                self._terminations[i] = self._truncations[i] = False
            else:
                observations[i], rewards[i], terminated, truncated, info = env.step(actions[i])
                self._terminations[i], self._truncations[i] = terminated, truncated
            infos.append(info)
        np.logical_or(self._terminations, self._truncations, out=self._autoreset)
        return (
            observations.copy(),
            rewards.copy(),
            self._terminations.copy(),
            self._truncations.copy(),
            self._gather(infos),
        )

    def _gather(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        """Gymnasium's vector info: per key, the campaigns' values batched, and ``_key``
        marking the campaigns that have it."""
        keys: dict[str, None] = {}
        for info in infos:
            keys.update(dict.fromkeys(info))
        out: dict[str, Any] = {}
        for key in keys:
            have = np.array([key in info for info in infos])
            values = [info[key] for info in infos if key in info]
            sample = np.asarray(values[0])
            array = np.zeros((self.num_envs, *sample.shape), dtype=sample.dtype)
            if have.all():
                array[:] = values
            else:
                array[have] = values
            out[key], out["_" + key] = array, have
        return out

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
