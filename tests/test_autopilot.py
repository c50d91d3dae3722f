"""The autopilot driven hour by hour by a market it has no model of (docs/integrate.md).

The market is written here: per arm, each hour's opportunities are 3-slot GSP auctions
against three rivals, with per-impression clicks and orders, and the platform stops
delivering at the campaign's budget. The bidder's own market model is a different one (a
log-normal second-price auction), so this is the situation of a real ad account.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from bidder.logs import LogError
from bidder.mpc import MPCConfig
from bidder.recommend import RecommendError
from policies.autopilot import Autopilot, Campaign, CampaignError

ARMS = (("tea", "feed"), ("tea", "search"), ("cups", "feed"), ("cups", "search"))
SLOTS = np.array([1.0, 0.6, 0.3])  # chance that a slot's ad is seen
START = dt.datetime(2026, 3, 2)  # a Monday
HISTORY_DAYS = 14


class GSPMarket:
    """Three rivals per opportunity, log-normal around each arm's price level; the winner
    of slot k pays the bid of the one below it (or the reserve)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.price = np.array([18.0, 30.0, 15.0, 26.0])  # rivals' median bid, CPM
        self.traffic = np.array([4000.0, 2500.0, 3500.0, 2000.0])
        self.ctr = np.array([0.03, 0.05, 0.025, 0.045])
        self.cvr = np.array([0.03, 0.04, 0.025, 0.035])
        self.aov = np.array([120.0, 120.0, 150.0, 150.0])

    def daypart(self, hour: int) -> float:
        return 0.6 + 0.8 * np.sin(np.pi * ((hour - 6) % 24) / 24) ** 2

    def play(self, hour: int, bids: np.ndarray, budget_left: float) -> pd.DataFrame:
        rows = []
        for k, (product, channel) in enumerate(ARMS):
            n = self.rng.poisson(self.traffic[k] * self.daypart(hour))
            rivals = np.sort(self.price[k] * np.exp(0.5 * self.rng.standard_normal((n, 3))))[
                :, ::-1
            ]
            rank = (rivals > bids[k]).sum(axis=1)  # our slot (3: none)
            won = (rank < 3) & (self.rng.random(n) < SLOTS[np.minimum(rank, 2)])
            below = np.where(rank < 3, rivals[np.arange(n), np.minimum(rank, 2)], 0.0)
            paid = np.where(rank < 2, below, 0.2 * self.price[k]) / 1000.0  # per impression
            cost = np.where(won, np.minimum(paid, bids[k] / 1000.0), 0.0)
            # The platform's budget cap: delivery stops when the budget is spent.
            delivered = won & (np.cumsum(cost) <= budget_left)
            spend = float(cost[delivered].sum())
            budget_left -= spend
            impressions = int(delivered.sum())
            clicks = int(self.rng.binomial(impressions, self.ctr[k]))
            orders = int(self.rng.binomial(clicks, self.cvr[k]))
            gmv = float(self.rng.gamma(orders * 4.0, self.aov[k] / 4.0)) if orders else 0.0
            rows.append(
                {
                    "product": product,
                    "channel": channel,
                    "impressions": impressions,
                    "clicks": clicks,
                    "orders": orders,
                    "spend": math.floor(spend * 100) / 100,  # billed in cents, never up
                    "gmv": round(gmv, 2),
                    "win_rate": impressions / max(n, 1),
                    "bid": float(bids[k]),
                }
            )
        return pd.DataFrame(rows)


def history(market: GSPMarket) -> pd.DataFrame:
    """Two weeks of hourly logs with the bids a manual advertiser would vary by day."""
    frames = []
    for day in range(HISTORY_DAYS):
        date = START.date() - dt.timedelta(days=HISTORY_DAYS - day)
        bids = market.price * market.rng.uniform(0.6, 1.8, size=len(ARMS))
        for hour in range(24):
            frame = market.play(hour, bids, np.inf)
            frame["clearing_cpm"] = np.where(
                frame["impressions"] > 0, frame["spend"] * 1000 / frame["impressions"].clip(1), 0
            ).round(4)
            frames.append(frame.assign(date=date.isoformat(), hour=hour))
    return pd.concat(frames, ignore_index=True)


def play_campaign(seed: int, budget: float, roi_target: float, config: MPCConfig | None = None):
    market = GSPMarket(seed)
    logs = history(market)
    campaign = Campaign(budget=budget, roi_target=roi_target, arms=ARMS, start=START)
    pilot = Autopilot(campaign, prior=logs, config=config)
    while not pilot.done:
        bids = pilot.next_bids()
        assert list(bids["product"]) == [a[0] for a in ARMS] and (bids["bid"] >= 0).all()
        report = market.play(pilot.hour, bids["bid"].to_numpy(), pilot.remaining_budget)
        pilot.record(report.drop(columns="bid"))
    return pilot


def test_with_a_loose_target_the_autopilot_spends_the_budget_and_no_more():
    pilot = play_campaign(0, budget=1500.0, roi_target=3.0)
    assert 0.95 * 1500.0 <= pilot.spent <= 1500.0
    assert pilot.roi >= 3.0
    assert len(pilot.decisions) == 24


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_a_binding_target_the_autopilot_stays_near_it_and_within_budget(seed):
    """ROI 8 binds here: spending the 5,000 would bring ROI to about 6. The bidder has no
    model of a GSP market, so it lands near the target rather than on it: measured over
    18 binding campaigns, 8 ended below the target, the worst 6.3% below (docs/integrate.md)."""
    pilot = play_campaign(seed, budget=5000.0, roi_target=8.0)
    assert pilot.spent <= 5000.0
    assert 0.3 * 5000.0 <= pilot.spent
    assert pilot.roi >= 0.9 * 8.0, (pilot.spent, pilot.gmv)


def test_a_larger_roi_margin_buys_roi_with_spend():
    # Over several campaigns: on one market's draws the margin can land either way (seed
    # 2 gives ROI 8.45 without it and 8.21 with it), on average it buys ROI with spend.
    default, careful = [], []
    for seed in range(6):
        default.append(play_campaign(seed, budget=5000.0, roi_target=8.0))
        careful.append(
            play_campaign(seed, budget=5000.0, roi_target=8.0, config=MPCConfig(roi_safety=0.08))
        )
    assert np.mean([p.roi for p in careful]) > np.mean([p.roi for p in default]) + 0.2
    assert sum(p.spent for p in careful) < sum(p.spent for p in default)
    assert all(p.spent <= 5000.0 for p in careful + default)


def test_a_target_the_market_cannot_reach_spends_little_and_keeps_the_budget():
    pilot = play_campaign(3, budget=1500.0, roi_target=40.0)
    assert pilot.spent <= 0.2 * 1500.0
    assert any(not d.roi_target_reachable for d in pilot.decisions)


def test_bad_campaigns_and_reports_are_refused_with_the_fix():
    with pytest.raises(RecommendError):
        Campaign(budget=-5, roi_target=3, arms=ARMS, start=START)
    with pytest.raises(CampaignError, match="twice"):
        Campaign(budget=100, roi_target=3, arms=ARMS + ARMS[:1], start=START)
    with pytest.raises(CampaignError, match="on the hour"):
        Campaign(budget=100, roi_target=3, arms=ARMS, start=dt.datetime(2026, 3, 2, 5, 30))
    market = GSPMarket(4)
    pilot = Autopilot(
        Campaign(budget=800.0, roi_target=3.0, arms=ARMS, start=START), history(market)
    )
    with pytest.raises(CampaignError, match="no bids known"):
        pilot.record(market.play(0, market.price, 800.0).drop(columns="bid"))
    bids = pilot.next_bids()
    report = market.play(0, bids["bid"].to_numpy(), 800.0).drop(columns="bid")
    with pytest.raises(CampaignError, match="missing"):
        pilot.record(report.iloc[:3])
    with pytest.raises(CampaignError, match="'clicks' is missing"):
        pilot.record(report.drop(columns="clicks"))
    with pytest.raises(CampaignError, match="finite number"):
        pilot.record(report.assign(spend=-1.0))
    assert pilot.hour == 0  # nothing was recorded by the refused reports
    pilot.record(report)
    assert pilot.hour == 1 and pilot.spent == pytest.approx(report["spend"].sum())
    other = Campaign(budget=800.0, roi_target=3.0, arms=ARMS, start=START + dt.timedelta(days=1))
    with pytest.raises(CampaignError, match="first day"):
        Autopilot(other, pilot.fitted)


def _log_rows(report: pd.DataFrame, when: dt.datetime) -> pd.DataFrame:
    return report.assign(date=when.date().isoformat(), hour=when.hour)


def test_autopilot_live_run_every_hour_bids_as_one_autopilot_running_all_day(tmp_path, capsys):
    from policies.cli import main

    budget, target, hours = 5000.0, 8.0, 8
    market = GSPMarket(5)
    history(market).to_csv(tmp_path / "history.csv", index=False)
    arms = ", ".join(f'["{product}", "{channel}"]' for product, channel in ARMS)
    (tmp_path / "campaign.toml").write_text(
        f'budget = "5k"\nroi_target = "800%"\nstart = 2026-03-02T00:00:00\n'
        f"horizon_hours = {hours}\narms = [{arms}]\n"
    )
    played = tmp_path / "played.csv"
    live_bids = []
    for hour in range(hours):
        argv = ["live", "--campaign", str(tmp_path / "campaign.toml"), "--history",
                str(tmp_path / "history.csv"), "--out", str(tmp_path / "next.csv")]  # fmt: skip
        if hour:
            argv += ["--played", str(played)]
        assert main(argv) == 0, capsys.readouterr().err
        assert f"hour {hour + 1} of {hours}" in capsys.readouterr().out
        bids = pd.read_csv(tmp_path / "next.csv")
        summary = json.loads((tmp_path / "next.json").read_text())
        assert (bids["run_id"] == summary["run_id"]).all() and summary["hour_index"] == hour
        assert list(zip(bids["product"], bids["channel"], strict=True)) == list(ARMS)
        live_bids.append(bids["bid"].to_numpy())
        report = market.play(hour, live_bids[-1], budget - summary["spent"])
        rows = _log_rows(report, START + dt.timedelta(hours=hour))
        rows.to_csv(played, mode="a", header=not played.exists(), index=False)
    # The same campaign in one process, on the same market draws: the same bids every hour.
    market = GSPMarket(5)
    logs = history(market)
    pilot = Autopilot(
        Campaign(budget=budget, roi_target=target, arms=ARMS, start=START, horizon_hours=hours),
        prior=logs,
    )
    for hour in range(hours):
        bids = pilot.next_bids()["bid"].to_numpy()
        np.testing.assert_allclose(live_bids[hour], bids, rtol=0, atol=1e-4)  # CSV: 4 decimals
        pilot.record(market.play(hour, bids, pilot.remaining_budget).drop(columns="bid"))
    assert pilot.spent <= budget
    assert main(argv + ["--played", str(played)]) == 2
    assert "all played" in capsys.readouterr().err


def test_autopilot_live_refuses_a_gap_in_the_played_hours(tmp_path, capsys):
    from policies.cli import main

    market = GSPMarket(6)
    history(market).to_csv(tmp_path / "history.csv", index=False)
    (tmp_path / "campaign.toml").write_text(
        "budget = 800\nroi_target = 3\nstart = 2026-03-02T00:00:00\n"
    )
    rows = [
        _log_rows(market.play(h, market.price, 800.0), START + dt.timedelta(hours=h))
        for h in (0, 2)
    ]
    pd.concat(rows).to_csv(tmp_path / "played.csv", index=False)
    argv = ["live", "--campaign", str(tmp_path / "campaign.toml"), "--history",
            str(tmp_path / "history.csv"), "--played", str(tmp_path / "played.csv"),
            "--out", str(tmp_path / "next.csv")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "is missing" in err and "\n" not in err
    assert not (tmp_path / "next.csv").exists()
    (tmp_path / "campaign.toml").write_text("budget = 800\nroi_target = 3\n")
    assert main(argv) == 2
    assert "start is missing" in capsys.readouterr().err


def test_autopilot_live_never_overwrites_an_input_and_bids_zero_once_the_budget_is_spent(
    tmp_path, capsys
):
    from policies.cli import main

    market = GSPMarket(7)
    history(market).to_csv(tmp_path / "history.csv", index=False)
    (tmp_path / "campaign.toml").write_text(
        "budget = 50\nroi_target = 2\nstart = 2026-03-02T00:00:00\n"
    )
    # The first hour, played at high bids, spent more than the whole budget.
    report = market.play(0, 3 * market.price, np.inf)
    assert report["spend"].sum() > 50
    _log_rows(report, START).to_csv(tmp_path / "played.csv", index=False)
    before = (tmp_path / "played.csv").read_bytes()
    argv = ["live", "--campaign", str(tmp_path / "campaign.toml"), "--history",
            str(tmp_path / "history.csv"), "--played", str(tmp_path / "played.csv")]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "played.csv")]) == 2
    assert "input" in capsys.readouterr().err
    assert (tmp_path / "played.csv").read_bytes() == before
    assert main([*argv, "--out", str(tmp_path / "next.csv")]) == 0
    capsys.readouterr()
    assert (pd.read_csv(tmp_path / "next.csv")["bid"] == 0).all()
    summary = json.loads((tmp_path / "next.json").read_text())
    assert summary["remaining_budget"] == 0 and "budget is spent" in summary["explanation"]


def test_the_ppo_planner_drives_the_autopilot_through_the_same_api():
    from policies.ppo import DEFAULT_POLICY

    market = GSPMarket(8)
    logs = history(market)
    campaign = Campaign(budget=5000.0, roi_target=8.0, arms=ARMS, start=START)
    pilot = Autopilot(campaign, prior=logs, policy=DEFAULT_POLICY)
    alone = Autopilot(campaign, prior=logs)
    assert (pilot.strategy_name, alone.strategy_name) == ("ppo-mpc", "mpc")
    # The planner sets the MPC's plan: its first bids are not MPC alone's.
    assert not np.allclose(pilot.next_bids()["bid"], alone.next_bids()["bid"])
    while not pilot.done:
        bids = pilot.next_bids()
        report = market.play(pilot.hour, bids["bid"].to_numpy(), pilot.remaining_budget)
        pilot.record(report.drop(columns="bid"))
    assert pilot.spent <= 5000.0 and pilot.roi >= 0.9 * 8.0
    assert len(pilot.decisions) == 24


def test_when_every_solver_fails_the_fallback_keeps_the_budget():
    pilot = play_campaign(9, budget=900.0, roi_target=3.0, config=MPCConfig(solvers=("NO_SUCH",)))
    assert all(d.solver == "fallback" for d in pilot.decisions)
    assert all(d.plan_spend <= 900.0 for d in pilot.decisions)
    # Reported spend is summed in floating point: a last-bit excess is the cap itself.
    assert 0 < pilot.spent <= 900.0 * (1 + 1e-12)


def test_an_arm_the_logs_never_showed_is_listed_and_bid_zero():
    market = GSPMarket(10)
    new_arm = ("teapot", "live")
    campaign = Campaign(budget=800.0, roi_target=3.0, arms=(*ARMS, new_arm), start=START)
    pilot = Autopilot(campaign, prior=history(market))
    assert pilot.unseen_arms == [new_arm]
    bids = pilot.next_bids()
    assert bids["bid"].iloc[-1] == 0 and (bids["bid"].iloc[:-1] > 0).all()
    report = market.play(0, bids["bid"].to_numpy()[:-1], 800.0).drop(columns="bid")
    quiet = {"product": "teapot", "channel": "live", "impressions": 0, "clicks": 0,
             "orders": 0, "spend": 0.0, "gmv": 0.0, "win_rate": 0.0}  # fmt: skip
    pilot.record(pd.concat([report, pd.DataFrame([quiet])], ignore_index=True))
    assert pilot.hour == 1 and pilot.spent == pytest.approx(report["spend"].sum())


#: An ad account's own channel names, none of them the simulator's.
ACCOUNT_NAMES = {"feed": "douyin-feed", "search": "baidu-search"}


def test_a_campaign_plays_under_the_ad_accounts_own_channel_names():
    market = GSPMarket(3)
    logs = history(market).replace({"channel": ACCOUNT_NAMES})
    arms = tuple((product, ACCOUNT_NAMES[channel]) for product, channel in ARMS)
    campaign = Campaign(budget=3000.0, roi_target=6.0, arms=arms, start=START)
    pilot = Autopilot(campaign, prior=logs)
    while not pilot.done:
        bids = pilot.next_bids()
        assert list(zip(bids["product"], bids["channel"], strict=True)) == list(arms)
        report = market.play(pilot.hour, bids["bid"].to_numpy(), pilot.remaining_budget)
        pilot.record(report.drop(columns="bid").replace({"channel": ACCOUNT_NAMES}))
    assert 0.9 * campaign.budget <= pilot.spent <= campaign.budget
    assert pilot.gmv > 0
    # A name the campaign does not declare is still a likely typo, and refused as one.
    typo = logs.replace({"channel": {"baidu-search": "baidu-serch"}})
    with pytest.raises(
        LogError, match=r"unknown channel 'baidu-serch' \(did you mean 'baidu-search'"
    ):
        Autopilot(campaign, prior=typo)


def test_autopilot_live_reads_logs_under_the_channel_names_its_campaign_declares(tmp_path, capsys):
    from policies.cli import main

    market = GSPMarket(4)
    history(market).replace({"channel": ACCOUNT_NAMES}).to_csv(tmp_path / "h.csv", index=False)
    arms = ", ".join(f'["{p}", "{ACCOUNT_NAMES[c]}"]' for p, c in ARMS)
    (tmp_path / "c.toml").write_text(
        f'budget = "4k"\nroi_target = 6\nstart = 2026-03-02T00:00:00\narms = [{arms}]\n'
    )
    argv = ["live", "--campaign", str(tmp_path / "c.toml"), "--history", str(tmp_path / "h.csv")]
    assert main([*argv, "--out", str(tmp_path / "next.csv")]) == 0, capsys.readouterr().err
    bids = pd.read_csv(tmp_path / "next.csv")
    assert set(bids["channel"]) == {"douyin-feed", "baidu-search"}
    # Without the campaign's arms, the account's names are refused as unknown channels.
    (tmp_path / "bare.toml").write_text(
        'budget = "4k"\nroi_target = 6\nstart = 2026-03-02T00:00:00\n'
    )
    bare = ["live", "--campaign", str(tmp_path / "bare.toml"), "--history", str(tmp_path / "h.csv")]
    assert main([*bare, "--out", str(tmp_path / "bare.csv")]) == 2
    assert "unknown channel 'douyin-feed'" in capsys.readouterr().err
    assert not (tmp_path / "bare.csv").exists()
