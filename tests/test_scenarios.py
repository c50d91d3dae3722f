"""Scenarios are data: validated, round-tripped through TOML, sampled, and bad files rejected.

Bad files are tried through the real command-line entry point (``autopilot scenario
show PATH``): exit code 2 and exactly one line on stderr that names the field.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.market_env import AdMarketEnv
from envs.presets import PRESETS, get_scenario
from envs.sampler import SamplerRanges, sample_scenario
from envs.scenario import KNOWN_CHANNELS, SHOCK_KINDS, Scenario, ScenarioError, Shock
from policies.cli import main

PRESET_NAMES = list(PRESETS)


# -- presets ------------------------------------------------------------------------------
def test_the_required_presets_exist() -> None:
    required = {
        "default",
        "steady",
        "evening-peak",
        "bid-war",
        "creative-fatigue",
        "traffic-shift",
        "promo-day",
        "aigc-mix",
    }
    assert required <= set(PRESETS)
    default = get_scenario("default")
    assert len(default.products) >= 3
    assert {c.name for c in default.channels} == set(KNOWN_CHANNELS)
    assert default.n_arms == len(default.products) * len(default.channels)


def test_aigc_mix_puts_original_and_ai_generated_creatives_side_by_side() -> None:
    creatives = {(a.product, a.channel): a.creative for a in get_scenario("aigc-mix").arms}
    assert set(creatives.values()) == {"original", "aigc"}
    # The same product runs both kinds of creative.
    assert {creatives[("serum", "feed")], creatives[("serum", "affiliate")]} == {"original", "aigc"}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_is_valid_data(name: str) -> None:
    scenario = get_scenario(name)
    assert scenario.name == name
    assert scenario.description
    assert scenario.budget > 0 and scenario.roi_target > 0
    assert get_scenario(name) == scenario  # a fresh, equal object each time


# -- TOML round trip ----------------------------------------------------------------------
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_toml_round_trip(name: str, tmp_path: Path) -> None:
    scenario = get_scenario(name)
    text = scenario.to_toml()
    assert Scenario.from_toml(text) == scenario
    path = tmp_path / f"{name}.toml"
    scenario.save(path)
    assert Scenario.load(path) == scenario
    assert get_scenario(str(path)) == scenario
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_cli_show_prints_toml_that_loads_back_unchanged(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenario", "show", name]) == 0
    shown = capsys.readouterr()
    assert shown.err == ""
    path = tmp_path / "f.toml"
    path.write_text(shown.out, encoding="utf-8")
    assert Scenario.load(path) == get_scenario(name)
    # Showing the file again prints it unchanged.
    assert main(["scenario", "show", str(path)]) == 0
    assert capsys.readouterr().out == shown.out


def test_cli_list_names_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list"]) == 0
    out = capsys.readouterr().out
    for name in PRESET_NAMES:
        assert name in out
    assert "AdMarket-BidWar-v0" in out


def test_infinite_fatigue_round_trips() -> None:
    scenario = get_scenario("steady")
    assert math.isinf(scenario.arms[0].fatigue_impressions)
    again = Scenario.from_toml(scenario.to_toml())
    assert math.isinf(again.arms[0].fatigue_impressions)


def test_lists_and_tuples_compare_equal() -> None:
    scenario = get_scenario("bid-war")
    as_lists = dataclasses.replace(scenario, shocks=list(scenario.shocks), arms=list(scenario.arms))
    assert as_lists == scenario and hash(as_lists) == hash(scenario)


# -- sampler ------------------------------------------------------------------------------
def test_sampler_is_deterministic_per_seed() -> None:
    for seed in range(5):
        first = sample_scenario(np.random.default_rng(seed))
        second = sample_scenario(np.random.default_rng(seed))
        assert first == second
    drawn = {sample_scenario(np.random.default_rng(seed)).to_toml() for seed in range(10)}
    assert len(drawn) == 10


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), horizon=st.sampled_from([1, 2, 3, 12, 24, 72]))
def test_sampled_scenarios_are_valid_and_within_ranges(seed: int, horizon: int) -> None:
    ranges = SamplerRanges()
    scenario = sample_scenario(np.random.default_rng(seed), horizon_hours=horizon)
    assert scenario.horizon_hours == horizon
    assert ranges.n_products[0] <= len(scenario.products) <= ranges.n_products[1]
    assert ranges.n_channels[0] <= len(scenario.channels) <= ranges.n_channels[1]
    assert ranges.n_shocks[0] <= len(scenario.shocks) <= ranges.n_shocks[1]
    assert scenario.n_arms == len(scenario.products) * len(scenario.channels)
    for product in scenario.products:
        assert ranges.aov[0] * 0.999 <= product.aov <= ranges.aov[1] * 1.001
    for channel in scenario.channels:
        assert ranges.price_cpm[0] * 0.999 <= channel.price_cpm <= ranges.price_cpm[1] * 1.001
    for arm in scenario.arms:
        assert 0 < arm.ctr <= ranges.ctr[1] * 1.001 and 0 < arm.cvr <= ranges.cvr[1] * 1.001
    for shock in scenario.shocks:
        assert shock.kind in SHOCK_KINDS and 0 <= shock.start_hour < horizon
    assert scenario.budget > 0 and scenario.roi_target > 0
    assert Scenario.from_toml(scenario.to_toml()) == scenario
    # It runs: one episode at median bids.
    env = AdMarketEnv(scenario)
    env.reset(seed=seed % 1000)
    for _ in range(horizon):
        *_, terminated, _, _ = env.step(np.zeros(env.n_arms, dtype=np.float32))
        if terminated:
            break
    assert env.spent <= scenario.budget


def test_sampled_budget_and_roi_target_bind() -> None:
    """The budget buys at most the spend available at median bids, the ROI target is real."""
    from envs.market import build_episode, expected_hour

    for seed in range(5):
        scenario = sample_scenario(np.random.default_rng(seed))
        market = build_episode(scenario)
        outcomes = [
            expected_hour(market, t, market.price_median[t]) for t in range(scenario.horizon_hours)
        ]
        spend = sum(o.spend.sum() for o in outcomes)
        gmv = sum(o.gmv.sum() for o in outcomes)
        assert scenario.budget <= spend * 1.001
        assert scenario.roi_target <= gmv / spend * 1.001


# -- bad files ----------------------------------------------------------------------------
def preset_data(name: str = "bid-war") -> dict:
    return tomllib.loads(get_scenario(name).to_toml())


def _unknown_key(data: dict) -> dict:
    data["colour"] = "red"
    return data


def _unknown_arm_key(data: dict) -> dict:
    data["arms"][1]["ctrr"] = 0.02
    return data


def _negative_budget(data: dict) -> dict:
    data["budget"] = -500.0
    return data


def _ctr_above_one(data: dict) -> dict:
    data["arms"][2]["ctr"] = 1.5
    return data


def _shock_hour_outside_horizon(data: dict) -> dict:
    data["shocks"][0]["start_hour"] = 30
    return data


def _shock_end_outside_horizon(data: dict) -> dict:
    data["shocks"][1]["end_hour"] = 25
    return data


def _unknown_channel_in_arm(data: dict) -> dict:
    data["arms"][0]["channel"] = "radio"
    return data


def _unknown_channel_table(data: dict) -> dict:
    data["channels"][1]["name"] = "billboard"
    return data


def _missing_required_key(data: dict) -> dict:
    del data["roi_target"]
    return data


BAD_FILES = {
    "unknown key": (_unknown_key, "colour"),
    "unknown arm key": (_unknown_arm_key, "arms[1].ctrr"),
    "negative budget": (_negative_budget, "budget"),
    "ctr above 1": (_ctr_above_one, "arms[2].ctr"),
    "shock hour outside the horizon": (_shock_hour_outside_horizon, "shocks[0].start_hour"),
    "shock end outside the horizon": (_shock_end_outside_horizon, "shocks[1].end_hour"),
    "unknown channel in an arm": (_unknown_channel_in_arm, "arms[0].channel"),
    "unknown channel table": (_unknown_channel_table, "channels[1].name"),
    "missing required key": (_missing_required_key, "roi_target"),
}


def assert_one_line_naming(err: str, field: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    assert lines[0].startswith("autopilot scenario: error: ")
    assert field in lines[0]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_fails_in_the_cli_with_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mutate, field = BAD_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(mutate(preset_data())), encoding="utf-8")
    assert main(["scenario", "show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_naming(err, field)
    assert str(path) in err


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_scenario_error_on_load(case: str, tmp_path: Path) -> None:
    mutate, field = BAD_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(mutate(preset_data())), encoding="utf-8")
    with pytest.raises(ScenarioError) as raised:
        Scenario.load(path)
    message = str(raised.value)
    assert "\n" not in message
    assert field in message
    assert ";" in message  # the problem, then the fix


def test_error_messages_name_the_fix(tmp_path: Path) -> None:
    cases = {
        "negative budget": "positive total budget",
        "ctr above 1": "fraction in (0, 1]",
        "shock hour outside the horizon": "between 0 and 23",
        "unknown channel in an arm": "feed, live, search, mall, affiliate",
        "unknown key": "remove it or fix the spelling",
    }
    for case, fix in cases.items():
        mutate, _ = BAD_FILES[case]
        with pytest.raises(ScenarioError) as raised:
            Scenario.from_dict(mutate(preset_data()))
        assert fix in str(raised.value), case


def test_malformed_toml_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken"\nbudget = = 100\n[[arms]\n', encoding="utf-8")
    assert main(["scenario", "show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_naming(err, "not valid TOML")
    assert "line 2" in err
    with pytest.raises(ScenarioError, match="not valid TOML"):
        Scenario.load(path)


def test_missing_file_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nowhere" / "missing.toml"
    assert main(["scenario", "show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_naming(err, str(path))
    assert "check the path" in err
    with pytest.raises(ScenarioError, match="does not exist"):
        Scenario.load(path)


def test_unknown_preset_name_fails_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "show", "no-such-preset"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_naming(err, "no-such-preset")


def test_invalid_scenarios_cannot_be_constructed() -> None:
    scenario = get_scenario("steady")
    with pytest.raises(ScenarioError, match="budget"):
        scenario.replace(budget=0.0)
    with pytest.raises(ScenarioError, match="horizon_hours"):
        scenario.replace(horizon_hours=0)
    with pytest.raises(ScenarioError, match=r"shocks\[0\].start_hour"):
        scenario.replace(horizon_hours=6, shocks=(Shock("bid_war", start_hour=6, factor=2.0),))
    with pytest.raises(ScenarioError, match=r"shocks\[0\].to_channel"):
        scenario.replace(shocks=(Shock("traffic_shift", start_hour=1, factor=0.5, channel="feed"),))
    with pytest.raises(ScenarioError, match=r"shocks\[0\].channel"):
        scenario.replace(shocks=(Shock("bid_war", start_hour=1, factor=2.0, channel="mall"),))
    with pytest.raises(ScenarioError, match=r"arms\[1\]"):
        scenario.replace(arms=(scenario.arms[0], scenario.arms[0]))
    with pytest.raises(ScenarioError, match="traffic_noise"):
        scenario.replace(traffic_noise=float("nan"))
