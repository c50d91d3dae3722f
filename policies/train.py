"""Train the PPO planner (``autopilot train``): a config, one seeding block, then the loop.

The agent learns on :class:`~policies.planner_env.PlannerEnv` over presets and randomised
markets, with one environment process per core. Every ``eval_every`` steps the current
policy plays fixed evaluation campaigns (the presets, fixed seeds) beside MPC alone on
the same campaigns; the learning curve, TensorBoard logs and checkpoints are written as it
goes, and ``resume`` continues from the newest checkpoint after an interruption.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.errors import InputError
from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
from envs.market_env import resolve_scenario
from envs.presets import PRESETS
from envs.sampler import Perturbation
from policies.planner_env import (
    BASE_FEATURES,
    FEATURE_NAMES,
    PlannerEnv,
    check_priors,
    training_scenarios,
)
from policies.policy_file import (
    POLICY_SUFFIX,
    PolicyFileError,
    load_weights,
    make_settings,
    policy_bytes,
    read_policy_file,
    restore_optimizer,
    save_policy,
)


@dataclass
class TrainConfig:
    """Settings of one training run (CleanRL style: every knob in one place)."""

    scenario: str = "mixed"
    """``mixed`` (presets and randomised markets), ``sampled`` (randomised markets only),
    or one preset name / scenario TOML path (every episode in it)."""
    timesteps: int = 100_000
    """Environment steps (campaign hours) to train for in total."""
    seed: int = 0
    """Seeds the environments, the network initialisation and the PPO sampling."""
    out: str = "ppo_mpc.safetensors"
    """Where the trained policy is written (a ``.safetensors`` policy file, docs/security.md);
    the learning curve goes beside it as .json."""
    n_envs: int = 2
    """Parallel environments (one process each when above 1): one per core."""
    preset_share: float = 0.4
    """With ``mixed``: the share of training campaigns drawn from the presets."""
    relative_to_mpc: bool = True
    """Reward the gain over MPC alone on the same market draw (variance reduction)."""
    roi_miss_penalty: float = 0.25
    """Extra loss (in normalised score units) of a campaign that misses its ROI target."""
    perturb: float = 1.0
    """With one scenario: each training campaign plays a market drawn around it, every
    fitted parameter times a log-uniform factor in ``[1/perturb, perturb]``
    (:func:`envs.sampler.perturb_scenario`); 1 trains on the scenario itself."""
    perturb_intervals: str | None = None
    """A twin's fit report (``scenario fit --report``): parameters with an interval are
    drawn inside it instead."""
    prior: str = "true"
    """What the bidder knows before each training campaign (``policies.prior``), or
    several kinds joined by commas (``fitted,cold``: each campaign gets one at random).
    ``true`` by default; the shipped policy was trained with ``fitted,cold``
    (``make train-default``). A ``fitted`` prior simulates
    and fits two weeks of logs for every campaign (about 0.3 s each); with ``pool`` that
    is paid once per pool campaign."""
    pool: int = 0
    """Campaigns drawn once per environment and replayed at random (their priors and MPC
    alone's baseline cached, :class:`~policies.planner_env.PlannerEnv`); 0 draws a fresh
    campaign every episode."""
    features: str = "all"
    """What the policy observes: ``all`` the planner's features, or ``base``, those of
    policies trained before the model-judging features (forecast errors so far, bid
    variation, the prior's delay; ``policies.planner_env.BASE_FEATURES``)."""
    learning_rate: float = 3e-4
    n_steps: int = 240
    """Steps per environment between updates (ten 24-hour campaigns)."""
    batch_size: int = 120
    n_epochs: int = 10
    gamma: float = 1.0
    """Undiscounted: a campaign is judged by its end-of-day score."""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    log_std_init: float = -2.0
    """Initial log standard deviation of the actions: a cautious start near the neutral
    plan (the risk-calibrated margin at its neutral z-score)."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    eval_every: int = 5_000
    """Evaluate (and checkpoint) every this many steps; 0 turns both off."""
    eval_seeds: int = 6
    """Evaluation campaigns per preset."""
    keep_best: bool = True
    """Write the best-evaluated policy to ``out`` (not the last one): PPO's last iterate
    can be worse than an earlier one, and the evaluation days are never trained on."""
    runs_dir: str = "runs"
    """TensorBoard logs go to ``runs_dir/<run name>``; empty turns them off."""
    resume: bool = False
    """Continue from the newest checkpoint beside ``out`` instead of starting afresh."""
    progress: bool = True


def make_env(config: TrainConfig, rank: int):
    """A factory of one training environment (importable, for subprocess workers)."""

    def build() -> PlannerEnv:
        rewards = {
            "relative_to_mpc": config.relative_to_mpc,
            "roi_miss_penalty": config.roi_miss_penalty,
            "prior": config.prior,
            "pool": config.pool,
            "features": feature_set(config.features),
        }
        if config.scenario == "mixed":
            return PlannerEnv(training_scenarios(preset_share=config.preset_share), **rewards)
        if config.scenario == "sampled":
            return PlannerEnv(training_scenarios(presets=[], preset_share=0.0), **rewards)
        perturbation = training_perturbation(config)
        if perturbation is None:
            return PlannerEnv(scenario=config.scenario, **rewards)
        base = resolve_scenario(config.scenario)
        return PlannerEnv(lambda rng: perturbation.draw(base, rng), **rewards)

    return build


def feature_set(name: str) -> tuple[str, ...]:
    """The feature names of ``--features all|base``.

    Raises:
        InputError: another name.
    """
    sets = {"all": FEATURE_NAMES, "base": BASE_FEATURES}
    if name not in sets:
        raise InputError(f"--features {name!r}: use all or base")
    return tuple(sets[name])


def training_perturbation(config: TrainConfig) -> Perturbation | None:
    """The perturbation ``config`` asks for, checked against its scenario; None for none.

    Raises:
        InputError: a perturbation with ``mixed`` or ``sampled`` (already randomised), a
            factor below 1, or a fit report that does not match the scenario.
    """
    if config.perturb == 1.0 and config.perturb_intervals is None:
        return None
    if config.scenario in ("mixed", "sampled"):
        raise InputError(
            f"--perturb with --scenario {config.scenario}: those markets are randomised "
            "already; give one preset or scenario TOML (e.g. a twin) to perturb"
        )
    from bidder.twin import load_intervals  # pandas and the nightly fit: imported when asked

    intervals = () if config.perturb_intervals is None else load_intervals(config.perturb_intervals)
    perturbation = Perturbation(config.perturb, intervals)
    perturbation.draw(resolve_scenario(config.scenario), np.random.default_rng(0))
    return perturbation


def evaluate_plans(
    choose_action,
    scenarios: list[str],
    seeds: int,
    priors: tuple[str, ...] = ("true",),
    features: tuple[str, ...] = FEATURE_NAMES,
    cache: dict | None = None,
) -> dict[str, float]:
    """A plan-choosing function ``choose_action(features)`` against MPC alone on
    ``scenarios`` x ``seeds`` fixed campaigns (the same market draws and prior for both;
    day ``s`` of a scenario has prior ``priors[s % len(priors)]``).

    ``cache`` (a dict the caller keeps between evaluations of one run) keeps the
    environments, so their compiled bidders, and MPC alone's result on each campaign,
    which does not depend on the policy: the later evaluations of a run replay only the
    policy's campaigns.

    Returns the mean normalised score (score / (budget * ROI target)) of the policy and of
    MPC alone, the policy's score in percent of MPC's on the worst scenario, and the share
    of campaigns whose ROI target the policy missed.
    """
    cache = {} if cache is None else cache
    baselines = cache.setdefault("baselines", {})
    envs = cache.setdefault("envs", {})
    policy, alone, worst, missed = [], [], [], []
    for i, name in enumerate(scenarios):
        mine, theirs = [], []
        for s in range(seeds):
            prior = priors[s % len(priors)]
            key = (name, prior, tuple(features))
            if key not in envs:
                envs[key] = PlannerEnv(
                    scenario=name,
                    relative_to_mpc=True,
                    prior=prior,
                    features=features,
                    baselines=baselines,
                )
            env = envs[key]
            observation, _ = env.reset(seed=10_000 + 100 * i + s)
            done, info = False, {}
            while not done:
                observation, _, done, _, info = env.step(choose_action(observation))
            mine.append(info["normalised_score"])
            theirs.append(info["mpc_normalised_score"])
            missed.append(float(info["roi_missed"]))
        policy.extend(mine)
        alone.extend(theirs)
        worst.append(100.0 * np.sum(mine) / np.sum(theirs))
    return {
        "eval_score": float(np.mean(policy)),
        "mpc_score": float(np.mean(alone)),
        "worst_pct_of_mpc": float(min(worst)),
        "roi_missed": float(np.mean(missed)),
    }


def selection_score(point: dict[str, float]) -> float:
    """How a checkpoint is ranked: its mean gain over MPC alone (percent), less the
    shortfall of its worst scenario below MPC, less one point per percent of campaigns
    that missed their ROI target: the kept policy must be good on average without
    giving up any scenario or the advertiser's target."""
    gain = point["pct_of_mpc"] - 100.0
    worst = min(point["worst_pct_of_mpc"] - 100.0, 0.0)
    return gain + worst - 100.0 * point["roi_missed"]


def _checkpoint_dir(config: TrainConfig) -> Path:
    out = Path(config.out)
    return out.with_name(out.stem + "_checkpoints")


def latest_checkpoint(config: TrainConfig) -> Path | None:
    """The newest checkpoint of this run, or ``None``."""
    found = []
    for path in _checkpoint_dir(config).glob(f"ppo_mpc_*_steps{POLICY_SUFFIX}"):
        match = re.fullmatch(r"ppo_mpc_(\d+)_steps\.safetensors", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def train(config: TrainConfig) -> dict[str, Any]:
    """Train a policy as ``config`` says; returns the summary also written as JSON."""
    if config.timesteps < 1:
        raise InputError(f"--timesteps {config.timesteps}: give at least 1 step")
    if isinstance(config.pool, bool) or not isinstance(config.pool, int) or config.pool < 0:
        raise InputError(f"--pool {config.pool!r}: give a number of campaigns, 0 for none")
    priors = check_priors(config.prior)
    features = feature_set(config.features)
    if config.eval_every > 0 and config.eval_seeds < 1:
        raise InputError(f"--eval-seeds {config.eval_seeds}: give at least 1 day per preset")
    out = Path(config.out)
    if out.suffix != POLICY_SUFFIX:
        raise PolicyFileError(
            f"--out {out}: a policy file ends in {POLICY_SUFFIX} (tensors and settings, no "
            f"code; docs/security.md); write e.g. --out {out.with_suffix(POLICY_SUFFIX).name}"
        )
    check_output_path(out, "policy file")
    summary_path = out.with_suffix(".json")
    check_output_path(summary_path, "training summary")
    if config.scenario not in ("mixed", "sampled"):
        resolve_scenario(config.scenario)  # fail fast, with the scenario error's message
        training_perturbation(config)
        inputs = [config.scenario, config.perturb_intervals]
        check_outputs_distinct(inputs, [out, summary_path])
    else:
        training_perturbation(config)  # refuses a perturbation of randomised markets
    # Heavy imports here so that the CLI's --help stays fast.
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    # -- seeding: everything random below derives from config.seed ------------------------
    set_random_seed(config.seed)
    # One thread: as fast for a network this small, and summation order stays fixed.
    torch.set_num_threads(1)

    factories = [make_env(config, rank) for rank in range(config.n_envs)]
    if config.n_envs > 1:
        vec_env = SubprocVecEnv(factories, start_method="forkserver")
    else:
        vec_env = DummyVecEnv(factories)
    vec_env.seed(config.seed)

    eval_scenarios = list(PRESETS)
    eval_cache: dict = {}  # environments and MPC alone's results, kept between evaluations
    started = time.perf_counter()
    curve: list[dict[str, float]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoints = _checkpoint_dir(config)
    run_id = new_run_id()
    record = {
        "run_id": run_id,
        "scenario": config.scenario,
        "seed": config.seed,
        "prior": ",".join(priors),
        "pool": config.pool,
        "preset_share": config.preset_share if config.scenario == "mixed" else None,
        "perturb": config.perturb,
        "features": config.features,
    }

    def settings_of(model: Any) -> dict[str, Any]:
        return make_settings(
            config.net_arch, model.num_timesteps, trained_with=record, feature_names=features
        )

    class Monitor(BaseCallback):
        """Periodic evaluation, checkpoint and progress bar in one callback."""

        def __init__(self) -> None:
            super().__init__()
            self.bar = None
            self.next_eval = 0

        def _on_training_start(self) -> None:
            self.next_eval = (
                (self.num_timesteps // config.eval_every + 1) * config.eval_every
                if config.eval_every > 0
                else 0
            )
            if config.progress:
                from tqdm.auto import tqdm

                # PPO collects whole rollouts of n_steps per environment, so it stops
                # at the first multiple of a rollout at or above the steps asked for.
                rollout = config.n_steps * config.n_envs
                self.bar = tqdm(
                    total=-(-config.timesteps // rollout) * rollout,
                    initial=self.num_timesteps,
                    unit="step",
                    desc="train ppo-mpc",
                )

        def _evaluate(self) -> None:
            result = evaluate_plans(
                lambda f: self.model.predict(f, deterministic=True)[0],
                eval_scenarios,
                config.eval_seeds,
                priors,
                features,
                eval_cache,
            )
            point = {
                "timesteps": int(self.num_timesteps),
                **result,
                "pct_of_mpc": 100.0 * result["eval_score"] / result["mpc_score"],
                "wall_s": time.perf_counter() - started,
            }
            point["selection"] = selection_score(point)
            curve.append(point)
            self.logger.record("eval/normalised_score", point["eval_score"])
            self.logger.record("eval/pct_of_mpc", point["pct_of_mpc"])
            self.logger.record("eval/worst_pct_of_mpc", point["worst_pct_of_mpc"])
            self.logger.record("eval/roi_missed", point["roi_missed"])
            checkpoints.mkdir(parents=True, exist_ok=True)
            policy = self.model.policy
            save_policy(
                checkpoints / f"ppo_mpc_{self.num_timesteps}_steps{POLICY_SUFFIX}",
                settings_of(self.model),
                policy,
                policy.optimizer,
            )
            if point["selection"] >= max(p.get("selection", -math.inf) for p in curve):
                save_policy(checkpoints / f"best{POLICY_SUFFIX}", settings_of(self.model), policy)
            if self.bar is not None:
                self.bar.set_postfix(pct_of_mpc=f"{point['pct_of_mpc']:.1f}")

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.update(self.training_env.num_envs)
            if config.eval_every > 0 and self.num_timesteps >= self.next_eval:
                self._evaluate()
                self.next_eval += config.eval_every
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    resume_from = latest_checkpoint(config) if config.resume else None
    run_name = f"{Path(config.scenario).stem}__ppo_mpc__{config.seed}__{int(time.time())}"
    tensorboard = config.runs_dir or None
    model = PPO(
        "MlpPolicy",
        vec_env,
        learning_rate=config.learning_rate,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        seed=config.seed,
        device="cpu",
        verbose=0,
        tensorboard_log=tensorboard,
        policy_kwargs={"net_arch": list(config.net_arch), "log_std_init": config.log_std_init},
    )
    if resume_from is not None:
        # The checkpoint's tensors go into the network built from this config: a
        # checkpoint is data, never code (docs/security.md).
        stored = read_policy_file(resume_from)
        load_weights(model.policy, stored.policy_tensors, str(resume_from))
        restore_optimizer(model.policy.optimizer, stored.optimizer_tensors, str(resume_from))
        model.num_timesteps = stored.settings["num_timesteps"]
        if summary_path.is_file():
            try:
                previous = json.loads(summary_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                previous = {}
            if isinstance(previous, dict) and isinstance(previous.get("learning_curve"), list):
                curve.extend(p for p in previous["learning_curve"] if isinstance(p, dict))
    remaining = config.timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(
            remaining,
            callback=CallbackList([Monitor()]),
            tb_log_name=run_name,
            reset_num_timesteps=resume_from is None,
        )
    vec_env.close()
    best = checkpoints / f"best{POLICY_SUFFIX}"
    chosen = None
    if config.keep_best and curve and best.is_file():
        chosen = max(curve, key=lambda p: p.get("selection", -math.inf))
        read_policy_file(best)  # the file to ship must be one that loads
        final = best.read_bytes()
    else:
        final = policy_bytes(settings_of(model), model.policy)

    summary = {
        "run_id": run_id,
        "config": asdict(config) | {"resumed_from": str(resume_from) if resume_from else None},
        "timesteps": int(model.num_timesteps),
        "wall_s": round(time.perf_counter() - started, 1),
        "eval_scenarios": eval_scenarios,
        "learning_curve": curve,
        "chosen": chosen,
    }
    # The policy and its summary are one output: both or neither, stamped with one run id.
    outputs = OutputSet()
    outputs.add_bytes(out, final)
    outputs.add_text(summary_path, json.dumps(summary, indent=2) + "\n")
    outputs.commit()
    return summary
