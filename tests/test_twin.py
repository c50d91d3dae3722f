"""The market twin (``autopilot scenario fit``): on simulated logs, where the truth is
known, the fitted scenario's parameters are close to the truth, its predictions of
held-out days are close to what happened, strategies score on it as on the true market,
and what logs cannot teach is said, not guessed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bidder.logs import read_logs, write_logs
from bidder.twin import fit_scenario, holdout_errors
from envs.presets import get_scenario
from envs.scenario import Scenario
from policies.cli import main
from policies.evaluate import evaluate_many
from policies.simulate import simulate_logs

DAYS, FIT_DAYS = 21, 18


def simulated(preset: str, tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp(preset) / "logs.csv"
    write_logs(simulate_logs(preset, "pid", DAYS, seed=0), path)
    return read_logs(path)


def split(logs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    dates = sorted(logs["date"].unique())
    return logs[logs["date"].isin(dates[:FIT_DAYS])], logs[logs["date"].isin(dates[FIT_DAYS:])]


@pytest.fixture(scope="module")
def default_logs(tmp_path_factory) -> pd.DataFrame:
    return simulated("default", tmp_path_factory)


@pytest.fixture(scope="module")
def bid_war_logs(tmp_path_factory) -> pd.DataFrame:
    return simulated("bid-war", tmp_path_factory)


def relative(a: float, b: float) -> float:
    return abs(a / b - 1.0)


def test_fitted_parameters_are_within_10_percent_of_the_truth(default_logs):
    fit, _ = split(default_logs)
    twin = fit_scenario(fit, start_weekday=0)
    truth = get_scenario("default")
    arms = {(a.product, a.channel): a for a in truth.arms}
    for arm in twin.scenario.arms:
        real = arms[(arm.product, arm.channel)]
        for name in ("traffic", "ctr", "cvr"):
            assert relative(getattr(arm, name), getattr(real, name)) < 0.10, (arm, name)
    products = {p.name: p for p in truth.products}
    for product in twin.scenario.products:
        assert relative(product.aov, products[product.name].aov) < 0.10
    channels = {c.name: c for c in truth.channels}
    for channel in twin.scenario.channels:
        real = channels[channel.name]
        assert relative(channel.price_cpm, real.price_cpm) < 0.10
        assert abs(channel.daypart_strength - real.daypart_strength) < 0.1
        assert abs(channel.competition_elasticity - real.competition_elasticity) < 0.1
    assert np.allclose(twin.scenario.weekday_factors, truth.weekday_factors, atol=0.05)
    assert twin.scenario.shocks == ()  # the default market has no scheduled shock


def test_held_out_days_are_predicted_within_10_percent(default_logs):
    fit, held = split(default_logs)
    twin = fit_scenario(fit)
    errors = holdout_errors(twin.scenario, held)
    campaign = errors[errors["product"] == "*"]
    assert len(campaign) == DAYS - FIT_DAYS
    assert campaign["spend_error"].abs().max() < 0.10, campaign
    assert campaign["gmv_error"].abs().max() < 0.10, campaign


def test_a_daily_bid_war_is_fitted_as_a_scheduled_shock(bid_war_logs):
    fit, held = split(bid_war_logs)
    twin = fit_scenario(fit)
    by_channel = {s.channel: s for s in twin.scenario.shocks}
    assert set(by_channel) == {"feed", "live"}  # the preset's bid war, hour 12 on
    for shock in by_channel.values():
        assert shock.kind == "bid_war" and shock.start_hour == 12 and shock.end_hour is None
        assert 1.6 < shock.factor < 2.4  # the truth: 2.0
    campaign = holdout_errors(twin.scenario, held).query("product == '*'")
    assert campaign["spend_error"].abs().max() < 0.10, campaign


@pytest.mark.parametrize("preset", ["default", "bid-war"])
def test_strategies_score_on_the_twin_as_on_the_true_market(preset, request):
    logs = request.getfixturevalue("default_logs" if preset == "default" else "bid_war_logs")
    truth = get_scenario(preset)
    fit, _ = split(logs)
    twin = fit_scenario(
        fit, budget=truth.budget, roi_target=truth.roi_target, start_weekday=truth.start_weekday
    ).scenario
    strategies = ["mpc", "proportional", "pid", "even"]
    scores = {}
    for name, scenario in (("truth", truth), ("twin", twin)):
        report = evaluate_many(strategies, [scenario], 4, 0, prior="true")
        block = next(iter(report["scenarios"].values()))["strategies"]
        scores[name] = {s: block[s]["score_mean"] for s in strategies}
    for s in strategies:
        assert relative(scores["twin"][s], scores["truth"][s]) < 0.08, (s, scores)
    rank = {n: sorted(strategies, key=lambda s: -scores[n][s]) for n in scores}
    assert rank["twin"] == rank["truth"], scores


def test_a_flagged_day_is_left_out_and_named(tmp_path):
    # The last day's feed creatives wear out: the diagnosis flags it, the fit leaves it out.
    out = tmp_path / "logs.csv"
    args = ["simulate", "--scenario", "default", "--strategy", "mpc", "--days", "14"]
    args += ["--start-date", "2026-01-01", "--shock-day", "13:creative_fatigue:0.4:feed"]
    assert main([*args, "--out", str(out)]) == 0
    twin = fit_scenario(read_logs(out))
    assert twin.excluded_days == ["2026-01-14"]
    feed_ctr = {a.product: a.ctr for a in twin.scenario.arms if a.channel == "feed"}
    truth = {a.product: a.ctr for a in get_scenario("default").arms if a.channel == "feed"}
    for product, ctr in feed_ctr.items():
        assert relative(ctr, truth[product]) < 0.05  # not dragged down by the worn-out day
    kept = fit_scenario(read_logs(out), exclude_flagged=False)
    assert kept.excluded_days == []


def test_scenario_fit_writes_a_toml_every_command_takes(default_logs, tmp_path, capsys):
    history = tmp_path / "logs.csv"
    write_logs(default_logs, history)
    out = tmp_path / "my-shop.toml"
    code = main(["scenario", "fit", "--history", str(history), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("fitted my-shop: 3 products, 5 channels, 15 arms from 21 days")
    assert f"wrote {out}" in printed and f"wrote {out.with_suffix('.json')}" in printed
    text = out.read_text()
    assert text.startswith("# A market twin fitted by `autopilot scenario fit`")
    scenario = Scenario.load(out)
    assert scenario.n_arms == 15
    report = json.loads(out.with_suffix(".json").read_text())
    names = {p["parameter"] for p in report["parameters"]}
    assert "arm.serum/feed.ctr" in names and "channel.feed.price_cpm" in names
    ctr = next(p for p in report["parameters"] if p["parameter"] == "arm.serum/feed.ctr")
    low, high = ctr["interval"]
    assert low < ctr["estimate"] < high
    assert "saturation" in report["not_identified"]
    # The twin is a scenario like any other.
    assert main(["evaluate", "--scenario", str(out), "--strategies", "mpc", "--episodes", "1",
                 "--no-progress", "--prior", "true"]) == 0  # fmt: skip


def test_scenario_fit_reports_held_out_days(default_logs, tmp_path, capsys):
    history = tmp_path / "logs.csv"
    write_logs(default_logs, history)
    out, report = tmp_path / "twin.toml", tmp_path / "fit.json"
    args = ["scenario", "fit", "--history", str(history), "--out", str(out)]
    assert main([*args, "--report", str(report), "--holdout-days", "3"]) == 0
    printed = capsys.readouterr().out
    assert "from 18 days" in printed and printed.count("held out 2026-") == 3
    holdout = json.loads(report.read_text())["holdout"]
    assert len(holdout["days"]) == 3 and len(holdout["per_day"]) == 3
    assert holdout["median_abs_error"]["campaign_gmv"] < 0.10


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "twin.txt"], "end the file name in .toml"),
        (["--out", "twin.toml", "--holdout-days", "-1"], "give 0 or more days"),
        (["--out", "twin.toml", "--holdout-days", "19"], "a twin needs at least"),
    ],
)
def test_scenario_fit_refuses_bad_requests_in_one_line(
    default_logs, tmp_path, capsys, extra, message
):
    history = tmp_path / "logs.csv"
    write_logs(default_logs, history)
    extra = [str(tmp_path / e) if e.startswith("twin") else e for e in extra]
    code = main(["scenario", "fit", "--history", str(history), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "twin.toml").exists()


def test_scenario_fit_refuses_bad_logs_as_recommend_does(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,hour,product\n2026-01-01,0,serum\n")
    code = main(["scenario", "fit", "--history", str(bad), "--out", str(tmp_path / "t.toml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "missing" in err[0].lower(), err
    assert not (tmp_path / "t.toml").exists()


def test_a_thin_arm_says_it_is_thin(default_logs):
    fit, _ = split(default_logs)
    thin = fit[~((fit["product"] == "serum") & (fit["channel"] == "search"))].copy()
    last_days = sorted(thin["date"].unique())[-2:]
    rows = fit[(fit["product"] == "serum") & (fit["channel"] == "search")]
    rows = rows[rows["date"].isin(last_days) & (rows["hour"] == 20)]  # two hours of data
    twin = fit_scenario(
        pd.concat([thin, rows]).sort_values(["date", "hour"]), exclude_flagged=False
    )
    entry = next(p for p in twin.parameters if p["parameter"] == "arm.serum/search.cvr")
    assert "thin" in entry["data"], entry
