"""The PPO planner: its environment, training through the CLI, saving, loading, seeding."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidder.plan import ROI_MARGIN_RANGE
from envs.sampler import sample_scenario
from policies.cli import main
from policies.evaluate import run_episode
from policies.planner_env import (
    FINAL_Z,
    N_ACTIONS,
    N_FEATURES,
    NEUTRAL_Z,
    PlannedMPCStrategy,
    PlannerEnv,
)
from policies.ppo import DEFAULT_POLICY, PolicyFileError, load_ppo_model, load_ppo_strategy
from policies.strategy import make_strategy
from policies.train import TrainConfig, train


class ZeroPlan(PlannedMPCStrategy):
    def choose_action(self, features: np.ndarray) -> np.ndarray:
        return np.zeros(N_ACTIONS)


def test_planner_env_passes_gymnasium_checker():
    check_env(PlannerEnv(scenario="bid-war"), skip_render_check=True)
    check_env(PlannerEnv(), skip_render_check=True)


def test_planner_env_is_deterministic_with_a_seed():
    def rollout() -> list[float]:
        env = PlannerEnv()
        features, _ = env.reset(seed=3)
        values, done = [float(features.sum())], False
        while not done:
            features, reward, done, _, _ = env.step(np.array([-0.5, 0.2, 0.4], np.float32))
            values += [float(features.sum()), reward]
        return values

    assert rollout() == rollout()


def test_observation_has_one_size_for_any_number_of_arms():
    for scenario in ("steady", "default"):  # 6 and 15 arms
        features, _ = PlannerEnv(scenario=scenario).reset(seed=0)
        assert features.shape == (N_FEATURES,)


class NoPlan(PlannedMPCStrategy):
    def choose_action(self, features: np.ndarray) -> None:
        return None


def test_no_plan_is_mpc_alone():
    for scenario in ("bid-war", "steady"):
        planned = run_episode(NoPlan(), scenario, 5)
        alone = run_episode(make_strategy("mpc"), scenario, 5)
        assert planned.score == alone.score
        np.testing.assert_array_equal(planned.trace["bid_cpm"], alone.trace["bid_cpm"])


class Recorder(ZeroPlan):
    """The zero plan, recording its ROI uncertainty and margins hour by hour."""

    def choose_action(self, features: np.ndarray) -> np.ndarray:
        record = self.__dict__.setdefault("record", [])
        cautious = self.plan_from_action(np.array([1.0, 0.0, 0.0]))
        bold = self.plan_from_action(np.array([-1.0, 0.0, 0.0]))
        neutral = self.plan_from_action(np.zeros(N_ACTIONS))
        record.append(
            (
                self.env.horizon - self.t,
                self.roi_uncertainty(),
                self.forecast_shortfall(),
                cautious.roi_margin - bold.roi_margin,
                bold.roi_margin,
                neutral.roi_margin,
            )
        )
        return super().choose_action(features)


def test_roi_margin_is_risk_calibrated_and_shrinks_as_the_day_is_known():
    strategy = Recorder()
    run_episode(strategy, "creative-fatigue", 2)
    hours_left, sigma, shortfall, spread, bold, neutral = np.array(strategy.record).T
    assert np.all(sigma > 0) and np.all(np.isfinite(sigma))
    # Early on most GMV is still to come; by the last hour little is left to chance.
    assert sigma[-1] < 0.3 * sigma[0]
    # The margin is z standard deviations plus the GMV the forecasts have lately
    # overstated (the bidder's own 3% replaced). The zero action's z is NEUTRAL_Z, the
    # boldest action's -0.5, and neither goes below FINAL_Z / sqrt(hours left): the
    # fewer hours are left to make up a shortfall, the more caution.
    own, cap = strategy.config.roi_safety, strategy.config.roi_safety + ROI_MARGIN_RANGE
    floor = FINAL_Z / np.sqrt(hours_left)
    for z, margin in ((np.maximum(NEUTRAL_Z, floor), neutral), (np.maximum(-0.5, floor), bold)):
        np.testing.assert_allclose(margin + own, np.clip(z * sigma + shortfall, 0, cap), rtol=1e-9)
    assert hours_left[-1] == 1 and floor[-1] == FINAL_Z
    # A higher risk entry always means a wider margin (the floor stays below z = 2.5).
    assert np.all(spread > 0)
    # A wearing creative makes the forecasts optimistic, and the margin holds it back.
    assert shortfall.max() > 0.005 and shortfall[0] == 0.0


def test_orders_still_to_arrive_count_in_the_roi_uncertainty():
    """With delayed orders, the ROI so far counts GMV clicked but not yet placed at its
    expectation; that GMV is as random as GMV still to buy, so the margin covers it
    (without it, the planner missed the target on a quarter of delayed-orders days)."""
    import math

    env = PlannerEnv(scenario="delayed-orders", prior="fitted")
    env.reset(seed=3)
    for _ in range(20):  # late in the day, when much of the GMV is still in flight
        env.step(np.zeros(N_ACTIONS, np.float32))
    strategy = env.strategy
    pending = strategy.forecaster.pending_gmv_by_arm(strategy.t)
    assert pending.sum() > 0
    assert pending.sum() == pytest.approx(strategy.forecaster.pending_gmv(strategy.t))
    gmv, required = strategy._remaining_plan()
    prior = strategy.forecaster.prior
    hour = min(strategy.t, env.market_env.horizon - 1)
    value = prior.aov[hour] * strategy.forecaster.factor("aov") * (1.0 + prior.aov_cv**2)
    expected = math.sqrt(float(((gmv + pending) * value).sum())) / required
    without = math.sqrt(float((gmv * value).sum())) / required
    assert strategy.roi_uncertainty() == pytest.approx(expected, rel=1e-12)
    assert strategy.roi_uncertainty() > without


def test_an_unmeasurable_risk_gives_the_widest_margin():
    strategy = ZeroPlan()
    run_episode(strategy, "steady", 1)
    strategy.forecast_shortfall = lambda: float("nan")
    assert strategy.plan_from_action(np.zeros(N_ACTIONS)).roi_margin == ROI_MARGIN_RANGE


class RandomActions(PlannedMPCStrategy):
    """Any action at all, corners included: the plan must still keep the budget."""

    def __init__(self, rng: np.random.Generator, corners: bool):
        super().__init__()
        self.rng, self.corners = rng, corners

    def choose_action(self, features: np.ndarray) -> np.ndarray:
        assert np.all(np.isfinite(features))
        if self.corners:
            return self.rng.choice([-1.0, 1.0], N_ACTIONS)
        return self.rng.uniform(-1.5, 1.5, N_ACTIONS)  # out of range too: clipped


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    budget_scale=st.sampled_from([1e-3, 1.0, 20.0]),
    corners=st.booleans(),
)
def test_no_planner_action_overspends_or_breaks_the_plan(seed, budget_scale, corners):
    scenario = sample_scenario(np.random.default_rng(seed), horizon_hours=12)
    scenario = scenario.replace(budget=scenario.budget * budget_scale)
    strategy = RandomActions(np.random.default_rng(seed + 1), corners)
    result = run_episode(strategy, scenario, seed)
    assert result.spend <= scenario.budget
    assert all(d.plan_spend <= scenario.budget + 1e-9 for d in strategy.decisions)


def test_episode_return_is_the_normalised_score():
    env = PlannerEnv(scenario="evening-peak")
    env.reset(seed=1)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, done, _, info = env.step(np.zeros(N_ACTIONS, np.float32))
        total += reward
    assert total == pytest.approx(info["normalised_score"], rel=1e-9)


def _small(tmp_path, name: str, **changes) -> TrainConfig:
    fields = dict(
        timesteps=480,
        seed=7,
        out=str(tmp_path / f"{name}.safetensors"),
        n_envs=1,
        eval_every=0,
        eval_seeds=1,
        runs_dir="",
        progress=False,
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_train_smoke_through_the_cli(tmp_path, capsys):
    out = tmp_path / "policy.safetensors"
    code = main(
        [
            "train",
            "--timesteps",
            "300",
            "--seed",
            "0",
            "--out",
            str(out),
            "--n-envs",
            "1",
            "--eval-every",
            "240",
            "--eval-seeds",
            "1",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    assert code == 0
    assert out.is_file() and out.stat().st_size < 1_000_000
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["timesteps"] == 480  # two whole rollouts of 240 steps
    printed = capsys.readouterr().out
    assert "trained 480 steps (300 asked for, rounded up to whole rollouts" in printed
    assert printed.strip().endswith(f"; wrote {out}")  # a new file; "replaced" when it was not
    assert [p["timesteps"] for p in summary["learning_curve"]] == [240, 480]
    assert any((tmp_path / "runs").iterdir())  # TensorBoard logs
    assert main(["train", "--scenario", "no-such-preset", "--out", str(out)]) == 2
    assert main(["train", "--eval-seeds", "0", "--out", str(out)]) == 2


def test_save_load_round_trip_gives_the_same_actions(tmp_path):
    config = _small(tmp_path, "round")
    train(config)
    from policies.policy_file import build_network, load_weights, read_policy_file

    stored = read_policy_file(config.out)
    trained = build_network(stored.settings)
    load_weights(trained, stored.policy_tensors, config.out)
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

    from policies.policy_file import read_policy_file

    params = []
    for name in ("a", "b"):
        config = _small(tmp_path, name)
        train(config)
        params.append(read_policy_file(config.out).policy_tensors)
    for key, value in params[0].items():
        assert torch.equal(value, params[1][key]), key


def test_resume_continues_from_the_newest_checkpoint(tmp_path):
    config = _small(tmp_path, "resumable", eval_every=240)
    train(config)
    summary = train(_small(tmp_path, "resumable", eval_every=240, timesteps=720, resume=True))
    assert summary["config"]["resumed_from"].endswith("ppo_mpc_480_steps.safetensors")
    assert summary["timesteps"] >= 720


def test_a_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyFileError, match="make train-default"):
        load_ppo_strategy(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_text("not a policy")
    with pytest.raises(PolicyFileError, match="not a safetensors policy"):
        load_ppo_strategy(tmp_path / "bad.safetensors")


def test_a_policy_for_another_planner_shape_is_a_clear_error(tmp_path):
    import torch
    from safetensors.torch import save

    from policies.planner_env import FEATURE_NAMES
    from policies.policy_file import make_settings

    older = make_settings([64, 64], 0) | {"feature_names": [*FEATURE_NAMES[:-1], "from_later"]}
    path = tmp_path / "old.safetensors"
    path.write_bytes(
        save({"policy/log_std": torch.zeros(N_ACTIONS)}, metadata={"settings": json.dumps(older)})
    )
    with pytest.raises(PolicyFileError, match="retrain"):
        load_ppo_strategy(path)


@pytest.mark.skipif(not DEFAULT_POLICY.is_file(), reason="no shipped policy")
def test_shipped_policy_is_small_and_never_overspends():
    assert DEFAULT_POLICY.stat().st_size < 1_000_000
    result = run_episode(make_strategy("ppo-mpc"), "default", 0)
    assert result.spend <= result.budget


def test_relative_reward_is_the_gain_over_mpc_alone_on_the_same_draw():
    env = PlannerEnv(scenario="bid-war", relative_to_mpc=True, roi_miss_penalty=0.5)
    env.reset(seed=4)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, done, _, info = env.step(np.array([-0.3, 0.2, 0.2], np.float32))
        total += reward
    # MPC alone on the same market draw: the same seed stream the environment used.
    market_seed = int(np.random.default_rng(4).integers(2**31))
    alone = run_episode(make_strategy("mpc"), "bid-war", market_seed)
    scale = alone.budget * alone.roi_target
    assert info["mpc_normalised_score"] == pytest.approx(alone.score / scale, rel=1e-12)
    penalty = 0.5 if info["roi_missed"] else 0.0
    assert total == pytest.approx(
        info["normalised_score"] - alone.score / scale - penalty, abs=1e-12
    )
    check_env(PlannerEnv(scenario="steady", relative_to_mpc=True), skip_render_check=True)


def _rollout(env: PlannerEnv, seed: int | None) -> tuple[list[float], dict]:
    features, info = env.reset(seed=seed)
    values, done, last = [float(features.sum())], False, {}
    while not done:
        features, reward, done, _, last = env.step(np.array([0.3, -0.2, 0.1], np.float32))
        values += [float(features.sum()), reward]
    return values, {**info, **last}


def test_a_pool_replays_its_campaigns_with_cached_priors_and_baselines(monkeypatch):
    import policies.evaluate as evaluate
    import policies.prior as prior

    calls = {"prior": 0, "baseline": 0}
    real_prior, real_episode = prior.prior_market, evaluate.run_episode

    def counted_prior(*args, **kwargs):
        calls["prior"] += 1
        return real_prior(*args, **kwargs)

    def counted_episode(*args, **kwargs):
        calls["baseline"] += 1
        return real_episode(*args, **kwargs)

    monkeypatch.setattr(prior, "prior_market", counted_prior)
    monkeypatch.setattr(evaluate, "run_episode", counted_episode)
    env = PlannerEnv(scenario="steady", relative_to_mpc=True, prior="cold,true", pool=2)
    env.reset(seed=5)
    for _ in range(8):
        _, info = env.reset()
        assert info["prior"] in ("cold", "true")
    assert len(env._cache) == 2  # two campaigns, each drawn once
    assert calls["baseline"] == 2  # MPC alone played once per campaign, not per episode
    assert calls["prior"] == sum(c[2] == "cold" for c in env._cache.values())
    # A replayed campaign scores exactly as a fresh environment playing that campaign.
    scenario, market_seed, kind, knowledge, steps = env._cache[0]
    alone = real_episode(make_strategy("mpc"), scenario, market_seed, kind, prior_market=knowledge)
    scale = scenario.budget * scenario.roi_target
    assert steps.sum() == pytest.approx(alone.score / scale, rel=1e-12)


def test_later_evaluations_of_a_run_replay_only_the_policys_campaigns(monkeypatch):
    """With the run's cache, an evaluation gives exactly what a fresh one gives, and the
    evaluations after the first play no MPC-alone campaign again."""
    import policies.evaluate as evaluate
    from policies.train import evaluate_plans

    calls = {"episodes": 0}
    real_episode = evaluate.run_episode

    def counted_episode(*args, **kwargs):
        calls["episodes"] += 1
        return real_episode(*args, **kwargs)

    monkeypatch.setattr(evaluate, "run_episode", counted_episode)
    size = PlannerEnv(scenario="default").action_space.shape[0]
    rng = np.random.default_rng(3)
    actions = [rng.uniform(-1, 1, size).astype(np.float32) for _ in range(2)]
    scenarios, priors = ["default", "steady"], ("cold", "true")
    cache: dict = {}
    for action in actions:
        fresh = evaluate_plans(lambda f, a=action: a, scenarios, 2, priors)
        before = calls["episodes"]
        cached = evaluate_plans(lambda f, a=action: a, scenarios, 2, priors, cache=cache)
        assert cached == fresh
        played = calls["episodes"] - before
        assert played == (4 if action is actions[0] else 0)  # MPC alone, first time only
    assert (
        fresh["eval_score"]
        != evaluate_plans(lambda f: np.zeros(size), scenarios, 2, priors)["eval_score"]
    )


def test_a_pool_run_is_reproducible_and_its_rewards_stay_relative_to_mpc_alone():
    def run() -> list[list[float]]:
        env = PlannerEnv(scenario="bid-war", relative_to_mpc=True, prior="fitted,cold", pool=3)
        out = [_rollout(env, 11)[0]]
        out += [_rollout(env, None)[0] for _ in range(3)]
        return out

    first = run()
    assert first == run()
    env = PlannerEnv(scenario="bid-war", relative_to_mpc=True, prior="fitted,cold", pool=3)
    values, info = _rollout(env, 11)
    total = sum(values[2::2])
    assert info["prior"] in ("fitted", "cold")
    assert total == pytest.approx(
        info["normalised_score"] - info["mpc_normalised_score"], abs=1e-12
    )


@pytest.mark.parametrize("prior", ["warm", "fitted,,cold", ""])
def test_an_unknown_training_prior_is_refused_in_one_line(prior, tmp_path, capsys):
    from policies.prior import PriorError

    with pytest.raises(PriorError, match="prior"):
        PlannerEnv(prior=prior)
    out = tmp_path / "p.safetensors"
    assert main(["train", "--prior", prior, "--out", str(out), "--no-progress"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["train", "--pool", "-1", "--out", str(out), "--no-progress"]) == 2


def test_a_policy_reads_the_features_it_names_and_older_policies_keep_working(tmp_path):
    from policies.planner_env import BASE_FEATURES, FEATURE_NAMES
    from policies.policy_file import build_network, make_settings, save_policy

    # A policy trained on the base features reads exactly those, at their positions.
    settings = make_settings([8], 0, feature_names=BASE_FEATURES)
    network = build_network(settings)
    path = save_policy(tmp_path / "base.safetensors", settings, network)
    strategy = load_ppo_strategy(path)
    features = np.arange(len(FEATURE_NAMES), dtype=np.float32)
    seen = []

    def record(observation, deterministic=True):
        seen.append(observation)
        return np.zeros(3), None

    strategy.model.predict = record
    strategy.choose_action(features)
    assert list(seen[0]) == list(range(len(BASE_FEATURES)))
    # Any known features in any order; the shipped policy still loads and plays.
    picked = ["bid_variation", "pace_gap"]
    settings = make_settings([8], 0, feature_names=picked)
    path = save_policy(tmp_path / "picked.safetensors", settings, build_network(settings))
    strategy = load_ppo_strategy(path)
    seen.clear()
    strategy.model.predict = record
    strategy.choose_action(features)
    assert list(seen[0]) == [FEATURE_NAMES.index(n) for n in picked]
    with pytest.raises(PolicyFileError, match="each feature once"):
        make_settings([8], 0, feature_names=["pace_gap", "pace_gap"])


def test_model_judging_features_see_forecast_errors_bid_variation_and_delay():
    from policies.planner_env import FEATURE_NAMES

    env = PlannerEnv(scenario="delayed-orders", prior="cold")
    first, _ = env.reset(seed=2)
    index = {name: FEATURE_NAMES.index(name) for name in FEATURE_NAMES}
    for name in ("spend_forecast_error", "gmv_forecast_error", "worst_channel_roi_error"):
        assert first[index[name]] == 0.0  # nothing played yet
    assert first[index["bid_variation"]] == 0.0
    features, done = first, False
    for _ in range(6):
        features, _, done, _, _ = env.step(np.array([0.0, 0.0, 0.0], np.float32))
    strategy = env.strategy
    spend, gmv, roi = strategy.model_errors()
    realised = strategy._realised[0].sum()
    predicted = sum(float(d.planned_spend.sum()) for d in strategy.decisions)
    floor = 1e-3 * env.market_env.budget / env.market_env.horizon
    assert spend == pytest.approx(np.log((realised + floor) / (predicted + floor)))
    assert features[index["spend_forecast_error"]] == pytest.approx(
        np.clip(3.0 * spend, -5, 5), rel=1e-5
    )
    assert np.isfinite([gmv, roi]).all()
    # Bids moved hour to hour, so the variation is positive and matches the logged bids.
    bids = np.array([d.bids_cpm for d in strategy.decisions])
    logs = np.log(bids[:, bids.min(axis=0) > 0])
    assert strategy.bid_variation() == pytest.approx(logs.std(axis=0).mean(), rel=1e-9)
    # The prior of a delayed market measured no delay when cold, a positive one when fitted.
    assert features[index["prior_delay_days"]] == 0.0
    fitted = PlannerEnv(scenario="delayed-orders", prior="fitted")
    observed, _ = fitted.reset(seed=2)
    assert observed[index["prior_delay_days"]] > 0.0
    base = PlannerEnv(scenario="delayed-orders", features=FEATURE_NAMES[:26])
    assert base.reset(seed=2)[0].shape == (26,) and base.observation_space.shape == (26,)
