"""Influencer channels paid by commission (docs/market.md, "Commission channels").

Covers: spend is the rate times the GMV sold and never passes the budget; a higher rate
brings more traffic with diminishing returns, and influencers answer a change with a
lag; the environment's action sets the rate, capped at the channel's maximum; the logs
carry the rate and round-trip it; bad rates and settings are refused in one line; the
fit recovers the going rate; MPC plans rates beside bids under the one budget and ROI
target and beats the fixed-rate baselines; the nightly recommendation writes rates.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from bidder.logs import LogError, read_logs, validate_logs, write_logs
from bidder.recommend import fit_market
from envs.market import build_episode, expected_hour
from envs.market_env import AdMarketEnv
from envs.presets import get_scenario
from envs.scenario import Arm, Channel, Product, Scenario, ScenarioError
from policies.cli import main
from policies.evaluate import evaluate_many
from policies.simulate import simulate_logs

PRESET = "commission-affiliate"


def influencer_only(**channel_fields) -> Scenario:
    channel = Channel("affiliate", payment="commission", going_rate=0.2, **channel_fields)
    return Scenario(
        name="influencers",
        budget=1e9,
        roi_target=2.0,
        products=(Product("p", aov=100.0),),
        channels=(channel,),
        arms=(Arm("p", "affiliate", traffic=20_000.0, ctr=0.02, cvr=0.03),),
    )


def test_spend_is_the_rate_times_the_gmv_sold():
    env = AdMarketEnv(PRESET)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    paid = env.commission
    for _ in range(24):
        _, _, done, _, info = env.step(rng.uniform(-1, 1, env.n_arms))
        rate = info["commission_rate"]
        assert np.all(rate[~paid] == 0) and np.all(rate[paid] > 0)
        assert np.allclose(info["spend"][paid], rate[paid] * info["gmv"][paid])
        assert np.allclose(info["commission"][paid], info["spend"][paid])
        assert np.all(info["commission"][~paid] == 0)
        if done:
            break


@pytest.mark.parametrize("budget", [1e-3, 5.0, 300.0, 20_000.0])
def test_commission_never_passes_the_budget(budget):
    for seed in range(4):
        env = AdMarketEnv(get_scenario(PRESET).replace(budget=budget))
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            # Every arm at its highest lever: the commission arms at the highest rate.
            _, _, done, _, info = env.step(np.ones(env.n_arms, np.float32))
            total += float(info["spend"].sum())
        assert total <= budget and info["spend_total"] <= budget


def test_a_higher_rate_brings_more_traffic_with_diminishing_returns():
    scenario = influencer_only()
    market = build_episode(scenario)
    rates = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    impressions = np.array([expected_hour(market, 12, [r]).impressions[0] for r in rates])
    gains = np.diff(impressions)
    assert np.all(gains > 0) and np.all(np.diff(gains) < 0)
    # At the hour's going rate (its daypart moves it) influencers bring 1 - 1/e of it.
    at_going = expected_hour(market, 12, [market.price_median[12, 0]])
    assert at_going.impressions[0] == pytest.approx(market.traffic[12, 0] * (1 - math.exp(-1)))
    # The arm's ROI is 1 / rate whatever the volume.
    for r in rates:
        hour = expected_hour(market, 12, [r])
        assert hour.gmv[0] / hour.spend[0] == pytest.approx(1 / r)


def test_influencers_answer_a_rate_change_with_a_lag():
    def impressions(lag: float) -> np.ndarray:
        env = AdMarketEnv(influencer_only(supply_lag_hours=lag).replace(traffic_noise=0.0))
        env.reset(seed=0)
        low, high = env.bids_to_action(np.array([0.05])), env.bids_to_action(np.array([0.4]))
        shares = []
        for t in range(24):
            _, _, _, _, info = env.step(low if t < 6 else high)
            shares.append(info["win_rate"][0])
        return np.array(shares)

    at_once, lagged = impressions(0.0), impressions(6.0)
    # The first hour at the new rate: at once nearly all of it, with the lag a little.
    assert at_once[6] > 0.8 and lagged[5] < lagged[6] < at_once[6] - 0.25
    gap = at_once[6:] - lagged[6:]  # the same hours (the going rate follows the daypart)
    assert np.all(np.diff(gap) < 0.005) and gap[-1] < 0.05  # the lag closes steadily


def test_the_action_sets_the_rate_capped_at_the_channel_maximum():
    env = AdMarketEnv(influencer_only(max_rate=0.3))
    assert env.action_to_bids(np.zeros(1))[0] == pytest.approx(0.2)  # the going rate
    assert env.action_to_bids(np.ones(1))[0] == pytest.approx(0.3)  # not 8 x 0.2
    assert env.bid_cap[0] == pytest.approx(0.3)


def test_logs_carry_the_rate_and_round_trip(tmp_path):
    logs = simulate_logs(PRESET, "pid", 2, seed=0)
    paid = logs["channel"] == "affiliate"
    assert logs.loc[paid, "commission_rate"].between(0, 0.5).all()
    assert logs.loc[~paid, "commission_rate"].isna().all()
    assert (logs.loc[paid, "bid"] == 0).all()
    active = paid & (logs["gmv"] > 0)
    expected = logs.loc[active, "commission_rate"] * logs.loc[active, "gmv"]
    assert np.allclose(logs.loc[active, "spend"], expected, rtol=1e-3, atol=0.02)
    for suffix in (".csv", ".parquet"):
        path = tmp_path / f"logs{suffix}"
        write_logs(logs, path)
        back = read_logs(path)
        assert np.allclose(
            back["commission_rate"].to_numpy(), logs["commission_rate"].to_numpy(), equal_nan=True
        )


@pytest.mark.parametrize(("value", "needle"), [(-0.1, "negative"), (0.95, "at most 0.9")])
def test_a_bad_logged_rate_is_refused_in_one_line(tmp_path, capsys, value, needle):
    logs = simulate_logs(PRESET, "pid", 3, seed=0)
    row = int(np.flatnonzero(logs["channel"] == "affiliate")[5])
    logs = logs.astype({"commission_rate": object})
    logs.loc[row, "commission_rate"] = value
    path = tmp_path / "logs.csv"
    logs.to_csv(path, index=False)
    with pytest.raises(LogError, match=needle):
        validate_logs(pd.read_csv(path))
    out = tmp_path / "recs.csv"
    code = main(["recommend", "--history", str(path), "--budget", "90k", "--roi-target", "4",
                 "--date", "2026-02-01",
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "commission_rate" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"max_rate": 0.95}, "max_rate"),
        ({"going_rate": 0.6}, "going_rate"),
        ({"going_rate": -0.1}, "going_rate"),
        ({"order_delay_hours": -3.0}, "order_delay_hours"),
        ({"reserve_cpm": 5.0}, "no auction, reserve"),
        ({"auction": "gsp"}, "no auction, reserve"),
        ({"supply_lag_hours": -1.0}, "supply_lag_hours"),
        ({"payment": "cpa"}, "unknown payment"),
    ],
)
def test_bad_commission_settings_are_refused_in_one_line(tmp_path, capsys, fields, needle):
    import tomli_w

    data = get_scenario(PRESET).to_dict()
    channel = next(c for c in data["channels"] if c["name"] == "affiliate")
    channel.update(fields)
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(ScenarioError, match=needle):
        Scenario.load(path)
    code = main(["evaluate", "--scenario", str(path), "--episodes", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_a_commission_channel_writes_only_its_own_settings():
    scenario = get_scenario(PRESET)
    text = scenario.to_toml()
    block = text.split('name = "affiliate"')[1].split("[[")[0]
    assert "going_rate = 0.25" in block and "price_cpm" not in block and "auction" not in block
    assert Scenario.from_toml(text) == scenario
    assert "payment" not in get_scenario("default").to_toml()  # CPM channels as before


def test_the_fit_recovers_the_going_rate_from_logs():
    logs = simulate_logs(PRESET, "pid", 10, seed=1)
    fitted = fit_market(logs, pd.Timestamp(logs["date"].max()).date() + pd.Timedelta(days=1))
    scenario = get_scenario(PRESET)
    truth = build_episode(scenario.replace(shocks=()))
    order = [[(a.product, a.channel) for a in scenario.arms].index(arm) for arm in fitted.arms]
    paid = np.array([c == "affiliate" for _, c in fitted.arms])
    assert fitted.commission.tolist() == paid.tolist()
    assert fitted.auction_by_channel["affiliate"] == "commission"
    true_rate = truth.price_median[:, order][:, paid]
    ratio = fitted.market.price_median[:, paid].mean(0) / true_rate.mean(0)
    assert np.all(np.abs(ratio - 1) < 0.05), ratio
    assert np.all(fitted.bid_cap[paid] <= 0.9)


def test_mpc_plans_rates_and_bids_under_one_budget_and_beats_fixed_rates():
    report = evaluate_many(["mpc", "pid", "even"], [PRESET], 3, 0)
    block = report["scenarios"][PRESET]["strategies"]
    results = report["_results"][PRESET]
    for episode in results["mpc"]:
        rates = episode.trace["commission_rate"]
        paid = rates[0] > 0
        assert paid.sum() == 3 and np.all(rates[:, paid] <= 0.5 + 1e-12)
        # It sets a rate of its own (the going rate, 0.25, pays too much here).
        assert np.all(rates[:, paid] < 0.24)
        assert episode.spend <= episode.budget
    assert block["mpc"]["budget_violations"] == 0
    assert block["mpc"]["roi_violation_rate"] == 0
    assert block["mpc"]["score_mean"] > block["pid"]["score_mean"]
    assert block["mpc"]["score_mean"] > block["even"]["score_mean"]


def synthetic_logs(last_day: dict) -> pd.DataFrame:
    """Eight days of a feed auction arm (ROI 4) and an affiliate commission arm at rate
    0.1 (ROI 10), identical every hour; ``last_day`` changes the affiliate's last day:
    ``opportunities``, ``share`` of them delivered and ``rate``."""
    rows = []
    for day in range(8):
        date = f"2026-03-{day + 1:02d}"
        settings = {"opportunities": 10_000, "share": 0.6, "rate": 0.1}
        if day == 7:
            settings |= last_day
        for hour in range(24):
            rows.append({"date": date, "hour": hour, "product": "serum", "channel": "feed",
                         "impressions": 10_000, "clicks": 250, "orders": 10, "spend": 300.0,
                         "gmv": 1200.0, "bid": 30.0, "win_rate": 0.5,
                         "commission_rate": None})  # fmt: skip
            impressions = round(settings["opportunities"] * settings["share"])
            orders = round(impressions / 600)
            gmv = 150.0 * orders
            rows.append({"date": date, "hour": hour, "product": "serum", "channel": "affiliate",
                         "impressions": impressions, "clicks": round(impressions / 40),
                         "orders": orders, "spend": round(settings["rate"] * gmv, 2),
                         "gmv": gmv, "bid": 0.0, "win_rate": settings["share"],
                         "commission_rate": settings["rate"]})  # fmt: skip
    return validate_logs(pd.DataFrame(rows))


@pytest.mark.parametrize(
    ("last_day", "cause"),
    [
        ({"opportunities": 1_000}, "influencer_supply"),  # an influencer left
        ({"share": 0.06}, "rival_commission"),  # same traffic and rate, a smaller share
        ({"rate": 0.3}, "commission_rate_increase"),  # we raised the rate
    ],
)
def test_the_diagnosis_names_a_commission_channels_causes(last_day, cause):
    from bidder.diagnose import diagnose

    diagnosis = diagnose(synthetic_logs(last_day))
    campaign = next(u for u in diagnosis.drops if u.scope == "campaign")
    assert campaign.causes[0].cause == cause, campaign.causes
    assert campaign.causes[0].share > 0.8
    assert sum(campaign.contributions.values()) == pytest.approx(campaign.log_change, abs=1e-6)
    assert "commission rate" in campaign.causes[0].evidence


def test_the_autopilot_api_gives_rates_beside_bids_and_keeps_the_budget():
    from policies.autopilot import Autopilot, Campaign

    history = simulate_logs(PRESET, "pid", 8, seed=2)
    scenario = get_scenario(PRESET)
    arms = [(a.product, a.channel) for a in scenario.arms]
    start = pd.Timestamp(history["date"].max()) + pd.Timedelta(days=1)
    pilot = Autopilot(
        Campaign(budget=30_000.0, roi_target=4.0, arms=arms, start=start), prior=history
    )
    env = AdMarketEnv(scenario.replace(budget=30_000.0))
    env.reset(seed=5)
    spent = 0.0
    for _ in range(24):
        plan = pilot.next_bids()
        paid = plan["channel"] == "affiliate"
        assert plan.loc[paid, "commission_rate"].between(0, 0.5).all()
        assert (plan.loc[paid, "bid"] == 0).all() and plan.loc[
            ~paid, "commission_rate"
        ].isna().all()
        levers = np.where(paid, plan["commission_rate"].fillna(0.0), plan["bid"])
        _, _, done, _, info = env.step(env.bids_to_action(levers))
        spent += float(info["spend"].sum())
        rows = plan[["product", "channel"]].assign(
            impressions=info["impressions"], clicks=info["clicks"], orders=info["orders"],
            spend=info["spend"], gmv=info["gmv"], win_rate=info["win_rate"],
        )  # fmt: skip
        pilot.record(rows)
        if done:
            break
    assert spent <= 30_000.0
    assert pilot.gmv / max(pilot.spent, 1e-9) >= 4.0 * 0.95


def test_the_nightly_recommendation_writes_rates_beside_bids(tmp_path, capsys):
    history, out = tmp_path / "logs.csv", tmp_path / "recs.csv"
    write_logs(simulate_logs(PRESET, "pid", 8, seed=3), history)
    args = ["recommend", "--history", str(history), "--budget", "90k", "--roi-target", "4"]
    args += ["--date", "2026-02-01", "--out", str(out), "--report", str(tmp_path / "p.html")]
    assert main(args) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == [
        "date",
        "hour",
        "product",
        "channel",
        "bid",
        "commission_rate",
    ]
    paid = table["channel"] == "affiliate"
    # The going rate is 0.25, which pays more than the ROI target allows: the plan lowers it.
    assert table.loc[paid, "commission_rate"].between(0.05, 0.24).all()
    assert (table.loc[paid, "bid"] == 0).all() and table.loc[~paid, "commission_rate"].isna().all()
    assert table["planned_spend"].sum() <= 90_000
    page = (tmp_path / "p.html").read_text()
    assert page.count("commission rate ") == paid.sum()  # one heat-map cell per arm-hour


def delayed(preset: str = PRESET, hours: float = 6.0) -> Scenario:
    """``preset`` with its commission channels' orders arriving ``hours`` after the click."""
    scenario = get_scenario(preset)
    channels = tuple(
        dataclasses.replace(c, order_delay_hours=hours) if c.commission else c
        for c in scenario.channels
    )
    return scenario.replace(channels=channels)


def test_a_delayed_sale_pays_its_commission_when_it_arrives():
    """Commission is owed at the rate of the click's hour and paid with the sale: an hour
    at rate r whose sales arrive later pays nothing then, and the whole day pays r x the
    GMV that arrived, late arrivals included."""
    scenario = delayed()
    env = AdMarketEnv(scenario)
    env.reset(seed=5)
    paid = env.commission
    rates = []
    total_spend = np.zeros(env.n_arms)
    total_gmv = np.zeros(env.n_arms)
    done = False
    while not done:
        _, _, done, _, info = env.step(np.zeros(env.n_arms, np.float32))  # a steady rate
        rates.append(info["commission_rate"][paid])
        total_spend += info["spend"]
        total_gmv += info["gmv"]
        assert np.allclose(info["commission"][paid], info["spend"][paid])
    assert np.allclose(np.array(rates), rates[0])  # one rate all day: spend = rate x GMV
    total_spend += info["late_commission"]
    total_gmv += info["late_gmv"]
    assert info["late_commission"][paid].sum() > 0  # sales after the last hour still pay
    assert np.all(info["late_commission"][~paid] == 0)
    assert np.allclose(total_spend[paid], rates[0] * total_gmv[paid])
    assert info["spend_total"] == pytest.approx(total_spend.sum())
    assert info["spend_total"] <= scenario.budget


@pytest.mark.parametrize("budget", [5.0, 300.0, 20_000.0])
def test_commission_owed_on_delayed_sales_never_passes_the_budget(budget):
    """What is owed on sales still to arrive is reserved: paying it, in the campaign or
    after its last hour, never passes the budget, whatever the auctions bought."""
    for seed in range(4):
        env = AdMarketEnv(delayed(hours=12.0).replace(budget=budget))
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, _, done, _, info = env.step(np.ones(env.n_arms, np.float32))
            total += float(info["spend"].sum())
            assert env.spent + env.pending.owed <= budget * (1 + 1e-12)
        total += float(info["late_commission"].sum())
        assert total <= budget and info["spend_total"] <= budget


def test_mpc_counts_commission_owed_on_delayed_sales_and_keeps_the_target():
    """MPC plans with what it owes on pending sales as spent (the forecaster's
    ``pending_spend``): the budget holds, the ROI target is kept, and it leads the
    fixed-rate baselines as it does without delays."""
    scenario = delayed()
    report = evaluate_many(["mpc", "pid", "oracle"], [scenario], 3, 0)
    block = report["scenarios"][scenario.name]["strategies"]
    assert block["mpc"]["budget_violations"] == 0
    assert block["mpc"]["roi_violation_rate"] == 0
    assert block["mpc"]["score_mean"] > block["pid"]["score_mean"]
    for episode in report["_results"][scenario.name]["mpc"]:
        assert episode.spend <= episode.budget


def test_the_forecaster_owes_the_rate_of_the_clicks_hour():
    from bidder.forecast import Forecaster

    market = build_episode(delayed())
    forecaster = Forecaster(market)
    paid = market.mechanism.commission
    n = len(paid)
    rates = np.where(paid, 0.3, 10.0)
    figures = {"impressions": np.full(n, 1000.0), "clicks": np.full(n, 50.0),
               "orders": np.zeros(n), "gmv": np.zeros(n), "win_rate": np.full(n, 0.5)}  # fmt: skip
    assert forecaster.pending_spend(0) == 0.0
    forecaster.update(0, rates, figures)
    owed, pending = forecaster.pending_spend(1), forecaster.pending_gmv(1)
    assert owed > 0
    # Commission arms only, at 0.3 of their pending GMV.
    q = forecaster.delay_q
    value = market.cvr[1] * forecaster.factor("cvr") * market.aov[1] * forecaster.factor("aov")
    attributed = market.attribution[1]
    expected = (q * 50.0 * value * attributed)[paid].sum() * 0.3
    assert owed == pytest.approx(expected)
    assert owed < pending


def test_an_episode_counts_the_commission_paid_after_its_last_hour():
    from policies.evaluate import run_episode
    from policies.strategy import make_strategy

    scenario = delayed(hours=12.0)
    result = run_episode(make_strategy("even"), scenario, seed=2)
    env = AdMarketEnv(scenario)
    env.reset(seed=2)
    done = False
    while not done:
        _, _, done, _, info = env.step(env.bids_to_action(result.trace["bid_cpm"][env.t]))
    assert info["late_commission"].sum() > 0
    assert result.spend == pytest.approx(info["spend_total"])
