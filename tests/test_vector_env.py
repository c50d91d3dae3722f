"""The vectorised environment: Gymnasium's vector API, and the single environment's draws."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import envs  # noqa: F401 - registers the ids
from envs import AdMarketEnv
from envs.vector_env import AdMarketVectorEnv


def _sync(scenario: str, n: int) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: AdMarketEnv(scenario) for _ in range(n)])


@pytest.mark.parametrize("scenario", ["default", "real-world", "delayed-orders", "bid-war"])
def test_each_campaign_meets_the_single_environments_draws(scenario):
    """Step for step, over more than one episode (autoreset included), the vector env gives
    what Gymnasium's SyncVectorEnv of single environments gives on the same seeds:
    observations, rewards, flags and every info figure."""
    n = 5
    ours, theirs = AdMarketVectorEnv(n, scenario), _sync(scenario, n)
    obs_a, info_a = ours.reset(seed=11)
    obs_b, info_b = theirs.reset(seed=11)
    np.testing.assert_array_equal(obs_a, obs_b)
    rng = np.random.default_rng(0)
    horizon = ours.envs[0].horizon
    ended = 0
    for _ in range(2 * horizon + 3):
        actions = rng.uniform(-1, 1, ours.action_space.shape).astype(np.float32)
        a = ours.step(actions)
        b = theirs.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        assert set(a[4]) == set(b[4])
        for key in b[4]:
            np.testing.assert_array_equal(a[4][key], b[4][key], err_msg=key)
        ended += int(a[2].sum())
    assert ended >= n  # every campaign ended at least once and was reset


def test_make_vec_builds_the_native_vector_env_and_its_spaces_batch():
    vec = gym.make_vec("AdMarket-Default-v0", num_envs=3)
    assert isinstance(vec.unwrapped, AdMarketVectorEnv)
    single = AdMarketEnv("default")
    assert vec.single_observation_space == single.observation_space
    assert vec.observation_space.shape == (3, *single.observation_space.shape)
    assert vec.action_space.shape == (3, single.n_arms)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=0)
    assert obs.shape == vec.observation_space.shape and obs.dtype == np.float32
    assert vec.observation_space.contains(obs)
    vec.close()


def test_the_step_after_an_end_resets_that_campaign_only():
    vec = AdMarketVectorEnv(2, "default")
    vec.reset(seed=4)
    high, low = np.ones(vec.action_space.shape, np.float32), -np.ones(vec.action_space.shape)
    # Campaign 0 bids the top of the range and spends its budget within hours; 1 bids low.
    actions = np.where(np.arange(2)[:, None] == 0, high, low).astype(np.float32)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = vec.step(actions)
        steps += 1
        if terminated[0]:
            break
        assert steps < vec.envs[0].horizon
    assert not terminated[1] and not truncated.any()
    t_other = info["t"][1]
    obs, reward, terminated, _, info = vec.step(actions)
    fresh = AdMarketEnv("default").observation_space
    assert reward[0] == 0.0 and not terminated[0]
    assert obs[0][0] == pytest.approx(1.0)  # the full budget again
    assert info["t"][0] == 0 and info["t"][1] == t_other + 1
    assert fresh.contains(obs[0])


def test_seeds_can_be_given_per_campaign_and_bad_arguments_are_refused():
    vec = AdMarketVectorEnv(2, "default")
    obs, _ = vec.reset(seed=[7, 7])
    np.testing.assert_array_equal(obs[0], obs[1])
    first = vec.step(np.zeros(vec.action_space.shape, np.float32))
    np.testing.assert_array_equal(first[0][0], first[0][1])  # same seed, same luck
    with pytest.raises(ValueError, match="2 campaigns"):
        vec.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros(3))
    with pytest.raises(ValueError, match="num_envs"):
        AdMarketVectorEnv(0)
