"""``autopilot recommend --batch``: many campaigns in one run, resumable, one bad one refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bidder.logs import write_logs
from policies.batch import read_batch, run_batch
from policies.cli import main
from policies.simulate import simulate_logs

NEXT_DAY = "2026-01-19"  # the default history runs from 2026-01-05 to 2026-01-18


@pytest.fixture(scope="module")
def histories(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    (folder / "logs").mkdir()
    for seed in (0, 1):
        write_logs(simulate_logs("default", "pid", 14, seed=seed), folder / "logs" / f"s{seed}.csv")
    return folder


def write_batch(folder: Path, campaigns: list[dict]) -> Path:
    lines = []
    for campaign in campaigns:
        lines.append("[[campaign]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in campaign.items()]
    path = folder / "campaigns.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [
    {"id": "shop-a", "history": "logs/s0.csv", "budget": 50000, "roi_target": 4, "date": NEXT_DAY},
    {"id": "shop-b", "history": "logs/s1.csv", "budget": "80k", "roi_target": "400%", "date": NEXT_DAY},
    {"id": "shop-c", "history": "logs/s0.csv", "budget": 30000, "roi_target": 5, "date": NEXT_DAY},
]  # fmt: skip
BAD = [
    {"id": "negative", "history": "logs/s0.csv", "budget": -5, "roi_target": 4, "date": NEXT_DAY},
    {"id": "no-file", "history": "logs/none.csv", "budget": 1000, "roi_target": 4, "date": NEXT_DAY},
]  # fmt: skip


def without_run_id(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns="run_id")


def test_a_batch_writes_what_one_recommend_per_campaign_writes(histories, tmp_path, capsys):
    batch = write_batch(histories, GOOD[:2] + BAD)
    out = tmp_path / "out"
    code = main(["recommend", "--batch", str(batch), "--out-dir", str(out), "--workers", "1"])
    assert code == 1  # some campaigns were refused
    printed = capsys.readouterr().out
    assert "planned 2 campaigns" in printed and "refused 2" in printed
    for campaign in GOOD[:2]:
        single = tmp_path / "single" / f"{campaign['id']}.csv"
        argv = ["recommend", "--history", str(histories / campaign["history"]), "--budget",
                str(campaign["budget"]), "--roi-target", str(campaign["roi_target"]),
                "--date", NEXT_DAY, "--out", str(single)]  # fmt: skip
        assert main(argv) == 0
        pd.testing.assert_frame_equal(
            without_run_id(out / f"{campaign['id']}.csv"), without_run_id(single)
        )
        batch_summary = json.loads((out / f"{campaign['id']}.json").read_text())
        single_summary = json.loads(single.with_suffix(".json").read_text())
        batch_summary.pop("run_id"), single_summary.pop("run_id")
        assert batch_summary == single_summary
    report = pd.read_csv(out / "batch_report.csv", keep_default_na=False)
    assert list(report.columns) == [
        "id", "status", "planned_spend", "expected_roi", "seconds", "error", "reused"
    ]  # fmt: skip
    assert list(report["id"]) == ["shop-a", "shop-b", "negative", "no-file"]
    assert list(report["status"]) == ["ok", "ok", "refused", "refused"]
    assert "positive amount" in report.loc[2, "error"]
    assert "does not exist" in report.loc[3, "error"]
    assert all("\n" not in e for e in report["error"])
    assert not (out / "negative.csv").exists() and not (out / "no-file.json").exists()
    parquet = pd.read_parquet(out / "batch_report.parquet")
    assert list(parquet["id"]) == list(report["id"])
    ok = report[report["status"] == "ok"]
    assert (ok["planned_spend"].astype(float) <= [50000, 80000]).all()


def test_two_workers_give_the_same_plans_as_one(histories, tmp_path):
    campaigns = read_batch(write_batch(histories, GOOD))
    one = run_batch(campaigns, tmp_path / "one", workers=1)
    two = run_batch(campaigns, tmp_path / "two", workers=2)
    for a, b in zip(one, two, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    for campaign in GOOD:
        pd.testing.assert_frame_equal(
            without_run_id(tmp_path / "one" / f"{campaign['id']}.csv"),
            without_run_id(tmp_path / "two" / f"{campaign['id']}.csv"),
        )


def test_a_rerun_keeps_complete_campaigns_and_redoes_broken_pairs(histories, tmp_path):
    campaigns = read_batch(write_batch(histories, GOOD))
    out = tmp_path / "out"
    run_batch(campaigns, out, workers=1)
    kept = (out / "shop-a.csv").read_bytes(), (out / "shop-a.json").read_bytes()
    # shop-b: only its table survived; shop-c: its table from another run than its summary.
    (out / "shop-b.json").unlink()
    other = json.loads((out / "shop-c.json").read_text()) | {"run_id": "run-000000000000"}
    (out / "shop-c.json").write_text(json.dumps(other))
    rows = run_batch(campaigns, out, workers=1)
    assert [row["reused"] for row in rows] == [True, False, False]
    assert ((out / "shop-a.csv").read_bytes(), (out / "shop-a.json").read_bytes()) == kept
    for ident in ("shop-b", "shop-c"):
        summary = json.loads((out / f"{ident}.json").read_text())
        assert (pd.read_csv(out / f"{ident}.csv")["run_id"] == summary["run_id"]).all()


def test_a_killed_batch_resumes_with_every_campaign_done_once(histories, tmp_path):
    many = [GOOD[i % 3] | {"id": f"c{i:02d}"} for i in range(12)]
    batch = write_batch(histories, many)
    out = tmp_path / "out"
    argv = [str(Path(sys.executable).with_name("autopilot")), "recommend", "--batch", str(batch),
            "--out-dir", str(out), "--workers", "1"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("c*.json"))) < 3:
        time.sleep(0.05)
    process.kill()
    process.wait()
    first = {p.name: p.read_bytes() for p in out.glob("c*.*")}
    assert 0 < len([n for n in first if n.endswith(".json")]) < 12, "kill the batch midway"
    assert subprocess.run(argv, capture_output=True).returncode == 0
    report = pd.read_csv(out / "batch_report.csv")
    assert (report["status"] == "ok").all() and len(report) == 12
    for ident, reused in zip(report["id"], report["reused"], strict=True):
        summary = json.loads((out / f"{ident}.json").read_text())
        assert (pd.read_csv(out / f"{ident}.csv")["run_id"] == summary["run_id"]).all()
        if reused:  # kept, byte for byte
            assert (out / f"{ident}.json").read_bytes() == first[f"{ident}.json"]
    assert report["reused"].sum() >= 3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("not toml [[", "not a TOML"),
        ("[other]\nx = 1\n", "unknown top-level key"),
        ('[[campaign]]\nid = "a"\n', "history is missing"),
        ('[[campaign]]\nid = "a\\n"\nhistory = "x"\nbudget = 1\nroi_target = 1\ndate = "2026-01-19"\n', "id"),
        ('[[campaign]]\nid = "../up"\nhistory = "x"\nbudget = 1\nroi_target = 1\ndate = "2026-01-19"\n', "id"),
        ('[[campaign]]\nid = "a"\nhistory = "x"\nbudget = 1\nroi_target = 1\ndate = "2026-01-19"\nbid = 3\n', "unknown key 'bid'"),
        ('[[campaign]]\nid = "a"\nhistory = "x"\nbudget = 1\nroi_target = 1\ndate = "2026-01-19"\n' * 2, "used twice"),
    ],
)  # fmt: skip
def test_a_bad_batch_file_is_refused_in_one_line(text, fragment, tmp_path, capsys):
    batch = tmp_path / "b.toml"
    batch.write_text(text)
    code = main(["recommend", "--batch", str(batch), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and fragment in err, err
    assert not (tmp_path / "out").exists()


def test_batch_and_single_campaign_flags_do_not_mix(histories, tmp_path, capsys):
    batch = write_batch(histories, GOOD[:1])
    assert (
        main(["recommend", "--batch", str(batch), "--out-dir", str(tmp_path), "--budget", "5"]) == 2
    )
    assert "--budget is for one campaign" in capsys.readouterr().err
    assert main(["recommend", "--batch", str(batch)]) == 2
    assert "--out-dir" in capsys.readouterr().err
    assert main(["recommend", "--history", "x.csv"]) == 2
    assert "--budget is required" in capsys.readouterr().err
    single = ["recommend", "--history", str(histories / "logs" / "s0.csv"), "--budget", "5000",
              "--roi-target", "4", "--date", NEXT_DAY, "--out", str(tmp_path / "r.csv")]  # fmt: skip
    assert main([*single, "--backend", "ray"]) == 2
    assert "go with --batch" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_a_campaign_may_name_a_policy_checked_as_recommend_checks_it(histories, tmp_path):
    from policies.ppo import DEFAULT_POLICY

    shutil.copy(DEFAULT_POLICY, histories / "ppo.safetensors")
    (histories / "broken.safetensors").write_bytes(b"not a policy")
    campaigns = [
        GOOD[0] | {"policy": "ppo.safetensors"},
        GOOD[1] | {"policy": "broken.safetensors"},
        GOOD[2] | {"policy": "broken.safetensors"},
    ]
    rows = run_batch(read_batch(write_batch(histories, campaigns)), tmp_path / "out")
    assert [row["status"] for row in rows] == ["ok", "refused", "refused"]
    assert "broken.safetensors" in rows[1]["error"] and rows[1]["error"] == rows[2]["error"]
    single = tmp_path / "single.csv"
    argv = ["recommend", "--history", str(histories / GOOD[0]["history"]), "--budget",
            str(GOOD[0]["budget"]), "--roi-target", str(GOOD[0]["roi_target"]), "--date",
            NEXT_DAY, "--policy", str(histories / "ppo.safetensors"), "--out", str(single)]  # fmt: skip
    assert main(argv) == 0
    batch_summary = json.loads((tmp_path / "out" / "shop-a.json").read_text())
    single_summary = json.loads(single.with_suffix(".json").read_text())
    assert batch_summary["plan"] == single_summary["plan"] and "checked" in batch_summary["plan"]


def test_a_campaign_chooses_its_response_model_as_recommend_model_does(histories, tmp_path):
    campaigns = [
        GOOD[0] | {"model": "empirical"},
        GOOD[1] | {"id": "neural", "model": "neural"},
    ]
    batch = write_batch(histories, campaigns)
    out = tmp_path / "out"
    assert main(["recommend", "--batch", str(batch), "--out-dir", str(out), "--workers", "1"]) == 1
    report = pd.read_csv(out / "batch_report.csv", keep_default_na=False)
    assert list(report["status"]) == ["ok", "refused"]
    assert "unknown response model" in report.loc[1, "error"]
    single = tmp_path / "single.csv"
    argv = ["recommend", "--history", str(histories / GOOD[0]["history"]), "--budget",
            str(GOOD[0]["budget"]), "--roi-target", str(GOOD[0]["roi_target"]), "--date",
            NEXT_DAY, "--model", "empirical", "--out", str(single)]  # fmt: skip
    assert main(argv) == 0
    pd.testing.assert_frame_equal(without_run_id(out / "shop-a.csv"), without_run_id(single))
    summary = json.loads((out / "shop-a.json").read_text())
    assert summary["response_model"] == "empirical"
