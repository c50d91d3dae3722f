"""The PPO planner: its environment, training through the CLI, saving, loading, seeding."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from policies.cli import main
from policies.evaluate import run_episode
from policies.planner_env import N_FEATURES, PlannedMPCStrategy, PlannerEnv
from policies.ppo import DEFAULT_POLICY, PolicyFileError, load_ppo_model, load_ppo_strategy
from policies.strategy import make_strategy
from policies.train import TrainConfig, train


class ZeroPlan(PlannedMPCStrategy):
    def choose_action(self, features: np.ndarray) -> np.ndarray:
        return np.zeros(3)


def test_planner_env_passes_gymnasium_checker():
    check_env(PlannerEnv(scenario="bid-war"), skip_render_check=True)
    check_env(PlannerEnv(), skip_render_check=True)


def test_planner_env_is_deterministic_with_a_seed():
    def rollout() -> list[float]:
        env = PlannerEnv()
        features, _ = env.reset(seed=3)
        values, done = [float(features.sum())], False
        while not done:
            features, reward, done, _, _ = env.step(np.array([0.3, -0.5, 0.2], np.float32))
            values += [float(features.sum()), reward]
        return values

    assert rollout() == rollout()


def test_observation_has_one_size_for_any_number_of_arms():
    for scenario in ("steady", "default"):  # 6 and 15 arms
        features, _ = PlannerEnv(scenario=scenario).reset(seed=0)
        assert features.shape == (N_FEATURES,)


def test_zero_plan_is_mpc_alone():
    for scenario in ("bid-war", "steady"):
        planned = run_episode(ZeroPlan(), scenario, 5)
        alone = run_episode(make_strategy("mpc"), scenario, 5)
        assert planned.score == alone.score
        np.testing.assert_array_equal(planned.trace["bid_cpm"], alone.trace["bid_cpm"])


def test_episode_return_is_the_normalised_score():
    env = PlannerEnv(scenario="evening-peak")
    env.reset(seed=1)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, done, _, info = env.step(np.zeros(3, np.float32))
        total += reward
    assert total == pytest.approx(info["normalised_score"], rel=1e-9)


def _small(tmp_path, name: str, **changes) -> TrainConfig:
    fields = dict(
        timesteps=480,
        seed=7,
        out=str(tmp_path / f"{name}.zip"),
        n_envs=1,
        eval_every=0,
        runs_dir="",
        progress=False,
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_train_smoke_through_the_cli(tmp_path):
    out = tmp_path / "policy.zip"
    code = main(
        [
            "train",
            "--timesteps",
            "480",
            "--seed",
            "0",
            "--out",
            str(out),
            "--n-envs",
            "1",
            "--eval-every",
            "240",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    assert code == 0
    assert out.is_file() and out.stat().st_size < 1_000_000
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["timesteps"] >= 480
    assert [p["timesteps"] for p in summary["learning_curve"]] == [240, 480]
    assert any((tmp_path / "runs").iterdir())  # TensorBoard logs
    assert main(["train", "--scenario", "no-such-preset", "--out", str(out)]) == 2


def test_save_load_round_trip_gives_the_same_actions(tmp_path):
    config = _small(tmp_path, "round")
    train(config)
    from stable_baselines3 import PPO

    trained = PPO.load(config.out, device="cpu")
    loaded = load_ppo_model(config.out)
    features = np.random.default_rng(0).normal(size=(32, N_FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(
        trained.predict(features, deterministic=True)[0],
        loaded.predict(features, deterministic=True)[0],
    )
    first = run_episode(load_ppo_strategy(config.out), "bid-war", 2)
    second = run_episode(make_strategy("ppo-mpc", path=config.out), "bid-war", 2)
    assert first.score == second.score


def test_same_seed_gives_the_same_policy(tmp_path):
    import torch
    from stable_baselines3 import PPO

    params = []
    for name in ("a", "b"):
        config = _small(tmp_path, name)
        train(config)
        params.append(PPO.load(config.out, device="cpu").policy.state_dict())
    for key, value in params[0].items():
        assert torch.equal(value, params[1][key]), key


def test_resume_continues_from_the_newest_checkpoint(tmp_path):
    config = _small(tmp_path, "resumable", eval_every=240)
    train(config)
    summary = train(_small(tmp_path, "resumable", eval_every=240, timesteps=720, resume=True))
    assert summary["config"]["resumed_from"].endswith("ppo_mpc_480_steps.zip")
    assert summary["timesteps"] >= 720


def test_a_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyFileError, match="make train-default"):
        load_ppo_strategy(tmp_path / "missing.zip")
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(PolicyFileError, match="could not be read"):
        load_ppo_strategy(tmp_path / "bad.zip")


@pytest.mark.skipif(not DEFAULT_POLICY.is_file(), reason="no shipped policy")
def test_shipped_policy_is_small_and_never_overspends():
    assert DEFAULT_POLICY.stat().st_size < 1_000_000
    result = run_episode(make_strategy("ppo-mpc"), "default", 0)
    assert result.spend <= result.budget


def test_relative_reward_is_zero_for_mpc_alone():
    # Common random numbers: the zero plan replays MPC alone's campaign exactly.
    env = PlannerEnv(scenario="bid-war", relative_to_mpc=True)
    env.reset(seed=4)
    total, done = 0.0, False
    while not done:
        _, reward, done, _, _ = env.step(np.zeros(3, np.float32))
        total += reward
    assert total == pytest.approx(0.0, abs=1e-12)
    check_env(PlannerEnv(scenario="steady", relative_to_mpc=True), skip_render_check=True)
