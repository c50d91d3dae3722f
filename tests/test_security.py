"""Safe with untrusted files and hostile input (docs/security.md).

Every break found by trying the CLI as a careful user and an attacker would has a test
here that reproduces it: policy files that would run code, outputs that would replace
inputs, values that overflow, half-written outputs, files that hang the reader, and
inputs that crashed with a traceback. Each asserts the exit code, the one-line message
and that every existing file is byte for byte as before.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import resource
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidder.logs import LogError, read_logs, write_logs
from envs.io import OutputError, OutputSet, atomic_write_text, remove_stale_temporaries
from envs.presets import get_scenario
from envs.scenario import Scenario, ScenarioError
from policies.cli import main
from policies.planner_env import N_FEATURES, planner_spaces
from policies.policy_file import (
    PolicyFileError,
    build_network,
    load_policy_network,
    make_settings,
    policy_bytes,
    read_policy_file,
)
from policies.ppo import DEFAULT_POLICY, load_ppo_model
from policies.simulate import simulate_logs

NEXT_DAY = "2026-01-19"  # the day after the simulated history below


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (links by their target's bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not stat.S_ISFIFO(p.stat().st_mode)
    }


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Run ``autopilot argv`` in-process; returns the exit code and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code)
    return code, capsys.readouterr().err


def assert_one_line_refusal(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.strip() and "\n" not in err.strip(), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("history") / "logs.csv"
    write_logs(simulate_logs("default", "pid", 14, seed=0), path)
    return path


@pytest.fixture()
def workdir(tmp_path, history) -> Path:
    (tmp_path / "h.csv").write_bytes(history.read_bytes())
    return tmp_path


# -- 1. policy files never run code ---------------------------------------------------------
class _Payload:
    """Unpickling this touches ``marker``: the attack a crafted policy file carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _sb3_zip(path: Path, n_features: int = N_FEATURES) -> Path:
    """A genuine stable-baselines3 PPO zip for this planner's spaces."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    class Spaces(gym.Env):
        observation_space, action_space = planner_spaces(n_features)

    PPO("MlpPolicy", Spaces(), n_steps=8, batch_size=8, device="cpu").save(path)
    return path


def _with_payload(clean: Path, crafted: Path, marker: Path) -> Path:
    """``clean`` with one extra pickled entry in its ``data`` JSON."""
    with zipfile.ZipFile(clean) as source:
        members = {name: source.read(name) for name in source.namelist()}
    data = json.loads(members["data"])
    data["innocent_looking"] = {
        ":type:": "<class 'object'>",
        ":serialized:": base64.b64encode(pickle.dumps(_Payload(marker))).decode(),
    }
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(crafted, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    return crafted


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("crafted")
    clean = _sb3_zip(folder / "clean.zip")
    marker = folder / "PWNED"
    return clean, _with_payload(clean, folder / "crafted.zip", marker), marker


def test_the_crafted_policy_is_a_real_attack_on_a_pickle_loader(crafted):
    from stable_baselines3.common.save_util import load_from_zip_file

    _, zip_path, marker = crafted
    load_from_zip_file(zip_path, device="cpu")  # what PPO.load does first
    assert marker.exists()
    marker.unlink()


def test_loading_a_crafted_policy_fails_and_runs_nothing(crafted, workdir, capsys):
    _, zip_path, marker = crafted
    with pytest.raises(PolicyFileError, match="pickles"):
        load_ppo_model(zip_path)
    before = snapshot(workdir)
    code, err = cli(
        capsys, "evaluate", "--strategies", "ppo-mpc", "--episodes", "1", "--policy",
        str(zip_path), "--no-progress",
    )  # fmt: skip
    assert_one_line_refusal(code, err, "refused")
    code, err = cli(
        capsys, "recommend", "--history", str(workdir / "h.csv"), "--budget", "120000",
        "--roi-target", "4", "--date", NEXT_DAY, "--out", str(workdir / "r.csv"),
        "--policy", str(zip_path),
    )  # fmt: skip
    assert_one_line_refusal(code, err, "refused")
    assert not marker.exists()
    assert snapshot(workdir) == before


def test_convert_keeps_the_features_an_older_zip_reads(tmp_path, capsys):
    from policies.planner_env import BASE_FEATURES

    older = _sb3_zip(tmp_path / "older.zip", len(BASE_FEATURES))
    out = tmp_path / "older.safetensors"
    code, err = cli(capsys, "policy", "convert", str(older), "--out", str(out))
    assert code == 0, err
    assert tuple(read_policy_file(out).settings["feature_names"]) == BASE_FEATURES
    assert load_policy_network(out).feature_names == BASE_FEATURES


def test_convert_reads_only_the_weights_of_an_old_zip(crafted, tmp_path, capsys):
    from stable_baselines3.common.save_util import load_from_zip_file

    clean, zip_path, marker = crafted
    out = tmp_path / "converted.safetensors"
    code, err = cli(capsys, "policy", "convert", str(zip_path), "--out", str(out))
    assert code == 0, err
    assert not marker.exists()
    network = load_policy_network(out)
    _, params, _ = load_from_zip_file(clean, device="cpu")  # the clean twin: safe to load
    reference = build_network(read_policy_file(out).settings)
    reference.load_state_dict(params["policy"])
    features = np.random.default_rng(0).normal(size=(16, N_FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(
        network.predict(features, deterministic=True)[0],
        reference.predict(features, deterministic=True)[0],
    )
    # Converting again says that it replaced the earlier file.
    assert main(["policy", "convert", str(zip_path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"replaced {out}:")


def test_a_pickle_payload_in_the_weights_is_refused(tmp_path, capsys):
    import torch

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.zip"
    weights = tmp_path / "policy.pth"
    torch.save({"mlp_extractor.policy_net.0.weight": _Payload(marker)}, weights)
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("data", "{}")
        archive.write(weights, "policy.pth")
    code, err = cli(
        capsys, "policy", "convert", str(evil), "--out", str(tmp_path / "x.safetensors")
    )
    assert_one_line_refusal(code, err, "not plain tensors")
    assert not marker.exists() and not (tmp_path / "x.safetensors").exists()


def _policy_file(path: Path, settings: dict | None = None, **tensor_changes) -> Path:
    from safetensors.torch import save

    network = build_network(make_settings([8], 0))
    tensors = {f"policy/{k}": v.clone() for k, v in network.state_dict().items()}
    tensors.update(tensor_changes)
    chosen = settings if settings is not None else make_settings([8], 0)
    path.write_bytes(save(tensors, metadata={"settings": json.dumps(chosen)}))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"settings": {**make_settings([8], 0), "loader": "os.system"}}, "unknown setting"),
        ({"settings": {**make_settings([8], 0), "feature_names": ["a"]}}, "retrain"),
        ({"settings": {**make_settings([8], 0), "activation": "eval"}}, "activation"),
        ({"settings": {**make_settings([8], 0), "net_arch": [10**9]}}, "net_arch"),
        ({"settings": {**make_settings([8], 0), "net_arch": [16]}}, "needs"),
        ({"log_std": np.full(3, np.nan)}, "NaN"),
        ({"extra": np.zeros(2)}, "unexpected tensor"),
    ],
)
def test_a_policy_file_holds_only_validated_settings_and_expected_tensors(
    tmp_path, change, message
):
    import torch

    settings = change.pop("settings", None)
    tensors = {
        (k if k == "extra" else f"policy/{k}"): torch.tensor(v, dtype=torch.float32)
        for k, v in change.items()
    }
    path = _policy_file(tmp_path / "p.safetensors", settings, **tensors)
    with pytest.raises(PolicyFileError, match=message):
        load_policy_network(path)


def test_garbage_and_non_files_are_refused_as_policies(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(300))
    with pytest.raises(PolicyFileError):
        load_ppo_model(tmp_path / "junk.safetensors")
    os.mkfifo(tmp_path / "fifo.safetensors")
    with pytest.raises(PolicyFileError, match="not a regular file"):
        load_ppo_model(tmp_path / "fifo.safetensors")


def test_the_shipped_policy_is_tensors_and_settings():
    assert DEFAULT_POLICY.suffix == ".safetensors"
    assert DEFAULT_POLICY.read_bytes()[:4] != b"PK\x03\x04"
    stored = read_policy_file(DEFAULT_POLICY)
    assert stored.settings["net_arch"] == [64, 64] and not stored.optimizer_tensors


# -- 2. an output never replaces an input ---------------------------------------------------
def test_an_output_that_is_an_input_is_refused(workdir, capsys):
    scenario = workdir / "my.toml"
    scenario.write_text(get_scenario("steady").to_toml())
    os.symlink(workdir / "h.csv", workdir / "link.csv")
    os.link(workdir / "h.csv", workdir / "hard.csv")
    before = snapshot(workdir)
    recommend = ["recommend", "--budget", "120000", "--roi-target", "4", "--date", NEXT_DAY]
    for history, out in (("h.csv", "h.csv"), ("link.csv", "h.csv"), ("h.csv", "hard.csv")):
        code, err = cli(
            capsys, *recommend, "--history", str(workdir / history), "--out", str(workdir / out)
        )
        assert_one_line_refusal(code, err, "is the input")
    # The summary's path (same name, .json) is an output too.
    code, err = cli(
        capsys, *recommend, "--history", str(workdir / "h.csv"),
        "--out", str(workdir / "my.csv"), "--policy", str(workdir / "my.json"),
    )  # fmt: skip
    assert code == 2 and "is the input" in err
    code, err = cli(
        capsys, "diagnose", "--history", str(workdir / "h.csv"), "--out", str(workdir / "h.csv")
    )
    assert_one_line_refusal(code, err, "is the input")
    code, err = cli(
        capsys, "evaluate", "--scenario", str(scenario), "--json", str(scenario),
        "--strategies", "even", "--episodes", "1", "--no-progress",
    )  # fmt: skip
    assert_one_line_refusal(code, err, "is the input")
    code, err = cli(
        capsys, "evaluate", "--json", str(workdir / "x.png"), "--plot", str(workdir / "x.png"),
        "--strategies", "even", "--episodes", "1", "--no-progress",
    )  # fmt: skip
    assert_one_line_refusal(code, err, "one file")
    code, err = cli(
        capsys, "simulate", "--scenario", str(scenario), "--days", "1",
        "--out", str(workdir / "link.csv"),
    )  # fmt: skip
    assert code == 0  # a log over a log that is not this run's input is allowed...
    (workdir / "link.csv").unlink()
    os.symlink(workdir / "h.csv", workdir / "link.csv")
    assert snapshot(workdir) == before  # ...and wrote through no link: h.csv is intact


# -- 3. counts that do not fit --------------------------------------------------------------
def test_counts_beyond_int64_are_refused_with_their_row(workdir, capsys):
    rows = pd.read_csv(workdir / "h.csv", dtype=str)
    for column in ("impressions", "clicks", "orders"):
        rows.loc[5, column] = "100000000000000000000"
    rows.to_csv(workdir / "big.csv", index=False)
    before = snapshot(workdir)
    code, err = cli(
        capsys, "recommend", "--history", str(workdir / "big.csv"), "--budget", "120000",
        "--roi-target", "4", "--date", NEXT_DAY, "--out", str(workdir / "r.csv"),
    )  # fmt: skip
    assert_one_line_refusal(code, err, "line 7", "'impressions'", "above")
    assert snapshot(workdir) == before
    for value in ("-1", "nan", "inf", "1e300", "0x10"):
        rows = pd.read_csv(workdir / "h.csv", dtype=str)
        rows.loc[0, "spend"] = value
        with pytest.raises(LogError, match="row 1, column 'spend'"):
            from bidder.logs import validate_logs

            validate_logs(rows)


# -- 4 and 5. outputs are atomic, alone and as a set ----------------------------------------
def test_a_failed_train_save_keeps_the_previous_policy(tmp_path):
    out = tmp_path / "policy.safetensors"
    out.write_bytes(DEFAULT_POLICY.read_bytes())
    before = snapshot(tmp_path)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = subprocess.run(
        [
            sys.executable, "-m", "policies.cli", "train", "--timesteps", "240", "--out",
            str(out), "--n-envs", "1", "--eval-every", "0", "--runs-dir", "", "--no-progress",
        ],
        preexec_fn=limit_file_size, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert_one_line_refusal(done.returncode, done.stderr, "policy.safetensors", "cannot write")
    assert snapshot(tmp_path) == before  # no truncated policy, no temporary left


def test_an_output_set_writes_all_or_nothing(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "a.json"
    first.write_text("old rows")
    second.write_text("old summary")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    outputs = OutputSet()
    outputs.add_text(first, "new rows")
    outputs.add(second, broken)
    with pytest.raises(OutputError, match="No space left"):
        outputs.commit()
    assert first.read_text() == "old rows" and second.read_text() == "old summary"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json"]

    def interrupted(tmp: Path) -> None:
        raise KeyboardInterrupt  # what SIGTERM becomes in the CLI

    outputs = OutputSet()
    outputs.add_text(first, "new rows")
    outputs.add(second, interrupted)
    with pytest.raises(KeyboardInterrupt):
        outputs.commit()
    assert first.read_text() == "old rows"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json"]


def test_recommend_writes_its_pair_with_one_run_id_or_neither(workdir, capsys):
    args = ["recommend", "--history", str(workdir / "h.csv"), "--budget", "120000",
            "--roi-target", "4", "--date", NEXT_DAY]  # fmt: skip
    (workdir / "r.json").mkdir()  # the summary cannot be written
    (workdir / "r.csv").write_text("previous recommendation")
    before = snapshot(workdir)
    code, err = cli(capsys, *args, "--out", str(workdir / "r.csv"))
    assert_one_line_refusal(code, err, "folder")
    assert snapshot(workdir) == before
    code, err = cli(capsys, *args, "--out", str(workdir / "ok.csv"))
    assert code == 0, err
    table = pd.read_csv(workdir / "ok.csv")  # as a reader would: no dtype given
    summary = json.loads((workdir / "ok.json").read_text())
    assert table["run_id"].nunique() == 1 and table["run_id"].iloc[0] == summary["run_id"]
    assert summary["run_id"].startswith("run-")  # never parsed as a number (7e92... is one)


def test_evaluate_writes_json_and_plot_together(tmp_path, capsys):
    (tmp_path / "plot.png").mkdir()
    code, err = cli(
        capsys, "evaluate", "--strategies", "even", "--episodes", "1", "--no-progress",
        "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "plot.png"),
    )  # fmt: skip
    assert_one_line_refusal(code, err, "folder")
    assert not (tmp_path / "r.json").exists()


def test_a_write_error_is_one_line_and_changes_nothing(workdir, capsys, monkeypatch):
    out = workdir / "logs.csv"
    out.write_text("previous logs")
    before = snapshot(workdir)

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    code, err = cli(capsys, "simulate", "--days", "1", "--out", str(out))
    assert_one_line_refusal(code, err, "Read-only file system")
    assert snapshot(workdir) == before


# -- 6. --roi-target 0 means no target ------------------------------------------------------
def test_roi_target_zero_plans_without_a_target(workdir, capsys):
    code, err = cli(
        capsys, "recommend", "--history", str(workdir / "h.csv"), "--budget", "120000",
        "--roi-target", "0", "--date", NEXT_DAY, "--out", str(workdir / "r.csv"),
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((workdir / "r.json").read_text())
    assert summary["roi_target"] == 0 and summary["planned_spend"] > 0.99 * 120_000


# -- 7. what the validator accepts, the simulator can play ----------------------------------
def _edited(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t + '\n[[shocks]]\nkind = "price_cut"\nstart_hour = 3\nfactor = 90.0\n',
         "cannot exceed 1"),
        (lambda t: t + '\n[[shocks]]\nkind = "promotion"\nstart_hour = 3\nfactor = 100.0\n'
         '\n[[shocks]]\nkind = "price_cut"\nstart_hour = 3\nfactor = 4.0\n', "cannot exceed 1"),
        (lambda t: _edited(t, "traffic = 60000.0", "traffic = 1e308"), "traffic"),
        (lambda t: _edited(t, "price_cpm = 45.0", "price_cpm = 1e308"), "price_cpm"),
        (lambda t: _edited(t, "aov = 159.0", "aov = 1e308"), "aov"),
        (lambda t: _edited(t, "budget = 120000.0", "budget = 1e300"), "budget"),
    ],
)  # fmt: skip
def test_scenarios_that_would_crash_the_simulator_are_refused(tmp_path, capsys, edit, message):
    path = tmp_path / "s.toml"
    path.write_text(edit(get_scenario("default").to_toml()))
    before = snapshot(tmp_path)
    code, err = cli(
        capsys, "evaluate", "--scenario", str(path), "--strategies", "even", "--episodes", "1",
        "--no-progress",
    )  # fmt: skip
    assert_one_line_refusal(code, err, message)
    assert snapshot(tmp_path) == before


def test_shocks_that_keep_cvr_a_probability_are_accepted():
    scenario = get_scenario("default")
    factor = 0.9 / max(arm.cvr for arm in scenario.arms)  # alone: every CVR stays below 1

    def with_cuts(second_start: int) -> str:
        return scenario.to_toml() + (
            f'\n[[shocks]]\nkind = "price_cut"\nstart_hour = 3\nend_hour = 5\nfactor = {factor}\n'
            f'\n[[shocks]]\nkind = "price_cut"\nstart_hour = {second_start}\nfactor = {factor}\n'
        )

    # Two cuts in different hours are fine; the same two overlapping lift CVR above 1.
    assert len(Scenario.from_toml(with_cuts(6)).shocks) == len(scenario.shocks) + 2
    with pytest.raises(ScenarioError, match="cannot exceed 1"):
        Scenario.from_toml(with_cuts(4))


# -- 8. simulated logs never overspend by rounding ------------------------------------------
def test_a_simulated_day_never_logs_more_than_its_budget():
    for name in ("default", "bid-war", "promo-day"):
        scenario = get_scenario(name)
        scenario = scenario.replace(budget=0.5 * scenario.budget)  # every day runs out
        budget = scenario.budget
        logs = simulate_logs(scenario, "even", 6, seed=3, strategy_options={"bid_multiplier": 4.0})
        daily = logs.groupby("date")["spend"].sum()
        assert (daily <= budget).all(), (name, daily.max() - budget)
        assert (daily > 0.999 * budget).all()  # every day at the edge


# -- 9 and 13. one line, never a traceback --------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00b\x00a",
        "name = 'x'".encode("utf-16"),
        bytes(range(256)) * 4,
        b"x = " + b"[" * 5000 + b"]" * 5000,
        b'name = "x"\x00',
    ],
)
def test_unreadable_scenario_files_are_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    code, err = cli(capsys, "scenario", "show", str(path))
    assert_one_line_refusal(code, err, "bad.toml")
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "extra, message",
    [
        ('\n[[shocks]]\nkind = "bid_war"\nstart_hour = 1\nfactor = 2.0\nproduct = ["a"]\n',
         "expected one name"),
        ('\n[[shocks]]\nkind = "bid_war"\nstart_hour = 1\nfactor = 2.0\nproduct = {a = 1}\n',
         "expected one name"),
        ('\n[[shocks]]\nkind = "bid_war"\nstart_hour = 1\nfactor = 2.0\nchannel = 5\n',
         "expected one name"),
    ],
)  # fmt: skip
def test_shock_fields_of_the_wrong_type_are_one_line(tmp_path, capsys, extra, message):
    path = tmp_path / "s.toml"
    path.write_text(get_scenario("steady").to_toml() + extra)
    code, err = cli(capsys, "scenario", "show", str(path))
    assert_one_line_refusal(code, err, message)


@pytest.mark.parametrize(
    "key, value, message",
    [("weekday_factors", 5, "list of 7"), ("description", {"a": 1}, "description")],
)
def test_top_level_fields_of_the_wrong_type_are_one_line(tmp_path, capsys, key, value, message):
    import tomllib

    import tomli_w

    data = tomllib.loads(get_scenario("steady").to_toml())
    data[key] = value
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(data))
    code, err = cli(capsys, "scenario", "show", str(path))
    assert_one_line_refusal(code, err, message)


def test_log_dates_pandas_cannot_hold_and_mixed_offsets_are_one_line(workdir, capsys):
    rows = pd.read_csv(workdir / "h.csv", dtype=str)
    future = rows.copy()
    future.loc[0, "date"] = "2263-01-01"
    future.to_csv(workdir / "future.csv", index=False)
    stamped = rows.drop(columns=["date", "hour"]).assign(
        timestamp=[
            f"{d}T{int(h):02d}:00:00{'+08:00' if i % 2 else '+00:00'}"
            for i, (d, h) in enumerate(zip(rows["date"], rows["hour"], strict=True))
        ]
    )
    stamped.to_csv(workdir / "mixed.csv", index=False)
    for name, needle in (("future.csv", "2262-04-10"), ("mixed.csv", "UTC offset")):
        code, err = cli(capsys, "diagnose", "--history", str(workdir / name))
        assert_one_line_refusal(code, err, name, needle)
    same_zone = stamped.assign(timestamp=stamped["timestamp"].str[:-6] + "+08:00")
    assert len(read_logs_frame(same_zone)) == len(rows)


def read_logs_frame(frame: pd.DataFrame) -> pd.DataFrame:
    from bidder.logs import validate_logs

    return validate_logs(frame)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["simulate", "--seed", "-1", "--out", "x.csv"], "--seed"),
        (["evaluate", "--seed", str(2**64)], "--seed"),
        (["simulate", "--start-date", "9999-12-31", "--days", "2", "--out", "x.csv"], "2262"),
        (["simulate", "--days", "1", "--out", "folder.csv"], "folder"),
        (["evaluate", "--episodes", "many"], "invalid int"),
        (["recommend", "--history", "fifo.csv", "--budget", "1", "--roi-target", "1",
          "--date", NEXT_DAY, "--out", "r.csv"], "not a regular file"),
        (["evaluate", "--scenario", "fifo.toml"], "not a regular file"),
        (["evaluate", "--scenario", "/dev/zero"], "not a regular file"),
        (["evaluate", "--scenario", "huge.toml"], "bytes, more than"),
    ],
)  # fmt: skip
def test_bad_arguments_and_special_files_are_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.csv").mkdir()
    os.mkfifo(tmp_path / "fifo.csv")
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "huge.toml").write_bytes(b"#" * (2 * 1024 * 1024))
    before = snapshot(tmp_path)
    code, err = cli(capsys, *argv)
    assert_one_line_refusal(code, err, needle)
    assert snapshot(tmp_path) == before


def test_long_horizons_are_refused_with_the_limit(tmp_path, capsys):
    path = tmp_path / "year.toml"
    path.write_text(get_scenario("steady").replace(horizon_hours=8784).to_toml())
    code, err = cli(capsys, "evaluate", "--scenario", str(path), "--no-progress")
    assert_one_line_refusal(code, err, "336 hours")


def test_a_killed_run_leaves_no_temporary_file_behind(tmp_path):
    out = tmp_path / "r.csv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    leftover = tmp_path / f".r.csv.{dead}.abcd.tmp"
    leftover.write_text("half-written by a killed run")
    mine = tmp_path / f".r.csv.{os.getpid()}.efgh.tmp"
    mine.write_text("being written by this process")
    atomic_write_text(out, "rows")
    assert not leftover.exists() and mine.exists() and out.read_text() == "rows"
    assert remove_stale_temporaries(out, older_than=-1) == 1  # very old: removed too


# -- 11. modes and durability ---------------------------------------------------------------
def test_outputs_respect_the_umask_and_keep_an_existing_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        os.chmod(kept, 0o604)
        atomic_write_text(kept, "new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "new"
    finally:
        os.umask(old)


# -- 12. histories that cannot teach anything -----------------------------------------------
def test_histories_without_usable_bids_are_refused_or_flagged(workdir, capsys):
    rows = pd.read_csv(workdir / "h.csv")
    rows.assign(bid=0.0).to_csv(workdir / "zero.csv", index=False)
    rows.assign(bid=rows["bid"] / 1000).to_csv(workdir / "milli.csv", index=False)
    args = ["recommend", "--budget", "120000", "--roi-target", "4", "--date", NEXT_DAY,
            "--out", str(workdir / "r.csv")]  # fmt: skip
    for name in ("zero.csv", "milli.csv"):
        code, err = cli(capsys, *args, "--history", str(workdir / name))
        assert_one_line_refusal(code, err, "column 'bid'", "CPM")
    assert not (workdir / "r.csv").exists()
    mostly = rows.copy()
    mostly.loc[mostly.index % 3 != 0, "bid"] = 0.0
    mostly.to_csv(workdir / "mostly.csv", index=False)
    code, err = cli(capsys, *args, "--history", str(workdir / "mostly.csv"))
    assert code == 0, err
    assert "rest on few rows" in json.loads((workdir / "r.json").read_text())["warnings"][0]


# -- property: mutated inputs give a result or a typed error, never a traceback -------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCENARIO_TEXT = get_scenario("bid-war").to_toml()
_ODD_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=3),
    st.sampled_from(["{ a = 1 }", "[[1]]", "nan", "inf", "1e308", "-0.0"]),
)


def _toml_value(value) -> str:
    if isinstance(value, str) and value.startswith(("{", "[[", "nan", "inf", "1e", "-0")):
        return value
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else (
                "inf"
                if value == float("inf")
                else "-inf"
                if value == float("-inf")
                else repr(value)
            )
        )
    return json.dumps(value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=st.integers(0, len(_SCENARIO_TEXT.splitlines()) - 1),
    value=_ODD_VALUES,
    flips=st.lists(st.tuples(st.integers(0, len(_SCENARIO_TEXT) - 1), st.integers(0, 255)),
                   max_size=3),
)  # fmt: skip
def test_mutated_scenarios_load_or_fail_typed_and_play_when_they_load(line, value, flips):
    lines = _SCENARIO_TEXT.splitlines()
    if " = " in lines[line]:
        key = lines[line].split(" = ")[0]
        lines[line] = f"{key} = {_toml_value(value)}"
    data = bytearray("\n".join(lines).encode())
    for position, byte in flips:
        data[position % len(data)] = byte
    try:
        scenario = Scenario.from_toml(data.decode("utf-8", errors="strict"))
    except (ScenarioError, UnicodeDecodeError):
        return
    from envs import AdMarketEnv

    env = AdMarketEnv(scenario.replace(horizon_hours=min(scenario.horizon_hours, 6), shocks=()))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        _, reward, done, _, info = env.step(rng.uniform(-1, 1, scenario.n_arms).astype(np.float32))
        assert np.isfinite(reward)
        if done:
            break


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.lists(
        st.tuples(st.integers(0, 199), st.integers(0, 12), _ODD_VALUES), min_size=1, max_size=4
    )
)
def test_mutated_logs_read_or_fail_typed(history, tmp_path_factory, cells):
    rows = pd.read_csv(history, dtype=str, nrows=200)
    for row, column, value in cells:
        rows.iloc[row, column % rows.shape[1]] = str(value)
    folder = tmp_path_factory.mktemp("mutated")
    path = folder / "logs.csv"
    rows.to_csv(path, index=False)
    before = path.read_bytes()
    try:
        clean = read_logs(path)
    except LogError:
        pass
    else:
        assert (clean[["impressions", "clicks", "orders"]] >= 0).all().all()
        assert np.isfinite(clean[["spend", "gmv", "bid"]].to_numpy()).all()
    assert path.read_bytes() == before


def test_one_mutated_log_through_the_cli_is_a_result_or_one_line(workdir, capsys):
    rows = pd.read_csv(workdir / "h.csv", dtype=str)
    rng = np.random.default_rng(0)
    for trial in range(6):
        mutated = rows.copy()
        for _ in range(3):
            mutated.iloc[rng.integers(len(rows)), rng.integers(rows.shape[1])] = rng.choice(
                ["-5", "1e400", "", "abc", "2263-01-01", "feedx", "99", "0"]
            )
        path = workdir / f"m{trial}.csv"
        mutated.to_csv(path, index=False)
        before = path.read_bytes()
        code, err = cli(capsys, "diagnose", "--history", str(path))
        assert code == 0 or (code == 2 and "\n" not in err.strip()), err
        assert path.read_bytes() == before


def test_the_shipped_policy_file_is_exactly_what_the_writer_produces():
    # The loader touches only the header JSON and raw tensor bytes: no pickle opcode
    # anywhere in the file could ever be reached.
    data = DEFAULT_POLICY.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    assert set(header["__metadata__"]) == {"settings"}
    assert policy_bytes(read_policy_file(DEFAULT_POLICY).settings,
                        load_policy_network(DEFAULT_POLICY)) == data  # fmt: skip
