"""``autopilot mcp``: a real server subprocess driven by the SDK's own client session.

Each test starts ``autopilot mcp --workspace DIR`` over stdio (or ``--http`` on loopback),
calls tools as an assistant would, and compares the answers with the CLI's for the same
inputs. Bad calls must come back as one-line tool errors, the server must keep
answering, and nothing may be written outside the workspace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pandas as pd
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from bidder.logs import write_logs
from policies.agent_tools import AgentTools
from policies.cli import main
from policies.simulate import simulate_logs

AUTOPILOT = str(Path(sys.executable).with_name("autopilot"))
NEXT_DAY = "2026-01-19"  # the default history runs from 2026-01-05 to 2026-01-18
TOOLS = set(AgentTools.TOOLS)


@pytest.fixture(scope="module")
def history_frame() -> pd.DataFrame:
    return simulate_logs("default", "pid", 14, seed=3)


@pytest.fixture
def workspace(tmp_path, history_frame) -> Path:
    """A workspace with 14 days of logs, next to an outside folder it must not touch."""
    root = tmp_path / "ws"
    root.mkdir()
    write_logs(history_frame, root / "logs.csv")
    outside = tmp_path / "outside"
    outside.mkdir()
    write_logs(history_frame, outside / "secret.csv")
    (root / "escape.csv").symlink_to(outside / "secret.csv")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class Session:
    """Calls on a live session, with results as plain data."""

    def __init__(self, session: ClientSession):
        self.session = session

    async def call(self, name: str, arguments: dict | None = None, progress=None):
        result = await self.session.call_tool(name, arguments or {}, progress_callback=progress)
        text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
        if result.is_error:
            return None, text
        assert result.structured_content == json.loads(text)
        return result.structured_content, None

    async def ok(self, name: str, arguments: dict | None = None, progress=None) -> dict:
        data, error = await self.call(name, arguments, progress)
        assert error is None, f"{name}: {error}"
        return data

    async def refused(self, name: str, arguments: dict, *fragments: str) -> str:
        data, error = await self.call(name, arguments)
        assert data is None, f"{name} should be refused"
        assert "\n" not in error and "Traceback" not in error, error
        for fragment in fragments:
            assert fragment in error, error
        # ... and the server still answers.
        listed = await self.session.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        return error


def drive(workspace: Path, body) -> None:
    """Start the server on ``workspace``, run ``await body(Session)``, stop the server."""
    params = StdioServerParameters(
        command=AUTOPILOT, args=["mcp", "--workspace", str(workspace)], cwd=str(workspace)
    )

    async def run() -> None:
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    await body(Session(session))

    anyio.run(run)


def cli_error(capsys, argv: list[str]) -> str:
    """The one-line message ``autopilot`` prints for ``argv`` (after ``error: ``)."""
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    return line.split(": error: ", 1)[1]


# -- listing ---------------------------------------------------------------------------------
def test_every_tool_has_a_schema_and_a_description_and_resources_are_served(workspace, capsys):
    seen: dict = {}

    async def body(s: Session) -> None:
        seen["list"] = await s.ok("list_scenarios")
        seen["show"] = await s.ok("show_scenario", {"name": "gsp-feed"})
        listed = await s.session.list_tools()
        seen["tools"] = {t.name: t for t in listed.tools}
        resources = await s.session.list_resources()
        seen["resources"] = {}
        for resource in resources.resources:
            read = await s.session.read_resource(resource.uri)
            seen["resources"][str(resource.uri)] = read.contents[0].text

    drive(workspace, body)
    tools = seen["tools"]
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert len(tool.description) > 60, name
        assert tool.input_schema["type"] == "object"
        for prop, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{name}.{prop} has no description"
    assert set(tools["recommend_bids"].input_schema["required"]) == {
        "history",
        "budget",
        "roi_target",
        "date",
    }
    assert tools["explain_plan"].annotations.read_only_hint is True
    assert tools["apply_bids"].annotations.read_only_hint is False
    # The scenario tools answer what `autopilot scenario list / show` print.
    from envs import PRESETS

    assert [p["name"] for p in seen["list"]["presets"]] == list(PRESETS)
    assert main(["scenario", "show", "gsp-feed"]) == 0
    assert seen["show"]["toml"] == capsys.readouterr().out
    assert {ch["auction"] for ch in seen["show"]["channels"]} >= {"gsp"}
    resources = seen["resources"]
    assert "impressions" in resources["autopilot://docs/log-format"]
    assert "default" in {p["name"] for p in json.loads(resources["autopilot://presets"])}
    # Before the first plan, the latest recommendation is empty.
    assert resources["autopilot://workspace/latest-summary"].strip() == "{}"


# -- the nightly plan, against the CLI -----------------------------------------------------------
def test_recommend_explain_what_if_apply_match_the_cli(workspace, tmp_path, capsys):
    cli_out = tmp_path / "cli" / "plan.csv"
    assert (
        main(
            [
                "recommend",
                "--history",
                str(workspace / "logs.csv"),
                "--budget",
                "50000",
                "--roi-target",
                "4",
                "--date",
                NEXT_DAY,
                "--out",
                str(cli_out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    got: dict = {}

    async def body(s: Session) -> None:
        plan = await s.ok(
            "recommend_bids",
            {"history": "logs.csv", "budget": "50k", "roi_target": 4, "date": NEXT_DAY},
        )
        got["plan"] = plan
        got["explain"] = await s.ok("explain_plan", {"plan_id": plan["plan_id"]})
        got["what_if"] = await s.ok(
            "what_if", {"plan_id": plan["plan_id"], "budgets": [25000, 50000, 100000]}
        )
        got["apply"] = await s.ok("apply_bids", {"plan_id": plan["plan_id"]})
        latest = await s.session.read_resource("autopilot://workspace/latest-summary")
        got["latest"] = json.loads(latest.contents[0].text)
        # The plan is refused once its history changes.
        with open(workspace / "logs.csv", "a") as handle:
            handle.write("\n")
        got["stale"] = await s.refused(
            "apply_bids", {"plan_id": plan["plan_id"]}, "changed since", "recommend_bids"
        )

    drive(workspace, body)
    plan_id = got["plan"]["plan_id"]
    table = pd.read_csv(workspace / got["plan"]["table"])
    cli_table = pd.read_csv(cli_out)
    assert (table["run_id"] == plan_id).all()
    pd.testing.assert_frame_equal(table.drop(columns="run_id"), cli_table.drop(columns="run_id"))
    summary = json.loads((workspace / got["plan"]["summary_file"]).read_text())
    cli_summary = json.loads(cli_out.with_suffix(".json").read_text())
    assert summary["run_id"] == plan_id
    assert {k: v for k, v in summary.items() if k != "run_id"} == {
        k: v for k, v in cli_summary.items() if k != "run_id"
    }
    assert got["plan"]["summary"]["planned_spend"] == cli_summary["planned_spend"] <= 50000
    assert got["latest"]["run_id"] == plan_id

    explain = got["explain"]
    assert explain["constraints"] == cli_summary["constraints"]
    assert explain["best_reachable_roi"] == cli_summary["best_reachable_roi"]
    assert explain["by_channel"] == cli_summary["by_channel"]

    points = got["what_if"]["points"]
    assert [p["budget"] for p in points] == [25000, 50000, 100000]
    assert all(p["reachable"] and p["planned_spend"] <= p["budget"] for p in points)
    spends = [p["planned_spend"] for p in points]
    assert spends == sorted(spends)
    # At the plan's own budget, the what-if is the plan (the plan's rows are rounded to
    # cents one by one: at most half a cent each).
    slack = 0.005 * len(cli_table)
    assert points[1]["planned_spend"] == pytest.approx(cli_summary["planned_spend"], abs=slack)
    assert points[1]["expected_gmv"] == pytest.approx(cli_summary["expected_gmv"], abs=slack)

    sheet = pd.read_csv(workspace / got["apply"]["bid_sheet"])
    assert list(sheet.columns) == ["date", "hour", "product", "channel", "bid"]
    pd.testing.assert_frame_equal(sheet, cli_table[list(sheet.columns)])
    assert got["apply"]["planned_spend"] <= got["apply"]["budget"] == 50000


def test_an_edited_plan_and_an_overspending_plan_are_not_applied(workspace):
    async def body(s: Session) -> None:
        plan = await s.ok(
            "recommend_bids",
            {"history": "logs.csv", "budget": 40000, "roi_target": 4, "date": NEXT_DAY},
        )
        table = workspace / plan["table"]
        original = table.read_bytes()
        frame = pd.read_csv(table)
        frame["planned_spend"] *= 3
        frame.to_csv(table, index=False)
        await s.refused("apply_bids", {"plan_id": plan["plan_id"]}, "was edited")
        # Even with its record rewritten to match, an overspending table is refused.
        record_path = workspace / ".autopilot" / "plans" / f"{plan['plan_id']}.json"
        record = json.loads(record_path.read_text())
        from policies.agent_tools import file_sha256

        record["table_sha256"] = file_sha256(table)
        record_path.write_text(json.dumps(record))
        await s.refused("apply_bids", {"plan_id": plan["plan_id"]}, "exceeds its budget")
        table.write_bytes(original)
        record["table_sha256"] = file_sha256(table)
        record_path.write_text(json.dumps(record))
        await s.ok("apply_bids", {"plan_id": plan["plan_id"]})

    drive(workspace, body)


# -- bad calls -----------------------------------------------------------------------------------
def test_bad_calls_are_one_line_tool_errors_and_nothing_leaves_the_workspace(
    workspace, tmp_path, capsys
):
    outside = tmp_path / "outside"
    before_outside = snapshot(outside)
    malformed = workspace / "malformed.csv"
    frame = pd.read_csv(workspace / "logs.csv", dtype=str)
    frame.loc[5, "clicks"] = "-3"
    frame.to_csv(malformed, index=False)
    history = str(workspace / "logs.csv")
    expected = {
        "budget": cli_error(
            capsys,
            ["recommend", "--history", history, "--budget", "-5", "--roi-target", "4", "--date",
             NEXT_DAY, "--out", str(tmp_path / "x.csv")],
        ),
        "malformed": cli_error(
            capsys,
            ["recommend", "--history", str(malformed), "--budget", "50000", "--roi-target", "4",
             "--date", NEXT_DAY, "--out", str(tmp_path / "x.csv")],
        ),
        "date": cli_error(
            capsys,
            ["recommend", "--history", history, "--budget", "50000", "--roi-target", "4",
             "--date", "19/01/2026", "--out", str(tmp_path / "x.csv")],
        ),
    }  # fmt: skip
    before_workspace = snapshot(workspace)
    messages: dict = {}

    async def body(s: Session) -> None:
        base = {"budget": 50000, "roi_target": 4, "date": NEXT_DAY}
        messages["budget"] = await s.refused(
            "recommend_bids", {"history": "logs.csv", **base, "budget": -5}
        )
        messages["malformed"] = await s.refused(
            "recommend_bids", {"history": str(malformed), **base}
        )
        messages["date"] = await s.refused(
            "recommend_bids", {"history": "logs.csv", **base, "date": "19/01/2026"}
        )
        for history_path in ("../outside/secret.csv", str(outside / "secret.csv"), "escape.csv"):
            await s.refused(
                "recommend_bids", {"history": history_path, **base}, "outside the workspace"
            )
        await s.refused("diagnose_roi", {"history": "escape.csv"}, "outside the workspace")
        await s.refused("show_scenario", {"name": "/etc/hostname"}, "outside the workspace")
        await s.refused("simulate_logs", {"out": "../outside/new.csv", "days": 1}, "outside")
        await s.refused("simulate_logs", {"out": "applied/new.csv", "days": 1}, "manage")
        await s.refused("simulate_logs", {"out": "logs.txt", "days": 1}, ".csv")
        await s.refused("simulate_logs", {"out": "new.csv", "days": 0}, "days")
        await s.refused("apply_bids", {"plan_id": "run-0123456789ab"}, "unknown plan id")
        await s.refused("apply_bids", {"plan_id": "../../etc/passwd"}, "not a plan id")
        await s.refused("what_if", {"plan_id": "run-0123456789ab"}, "unknown plan id")
        await s.refused("recommend_bids", {"history": "logs.csv", **base, "budget": [1]}, "budget")
        await s.refused("evaluate_strategies", {"strategies": ["nope"]}, "unknown strategy")
        await s.refused("evaluate_strategies", {"episodes": 0}, "episodes")
        data, error = await s.call("no_such_tool", {})
        assert data is None and "no_such_tool" in error
        await s.ok("list_scenarios")

    drive(workspace, body)
    assert messages == expected
    assert snapshot(outside) == before_outside
    assert snapshot(workspace) == before_workspace


# -- simulation, evaluation and diagnosis, against the CLI ------------------------------------------
def test_simulate_evaluate_and_diagnose_match_the_cli_and_report_progress(
    workspace, tmp_path, capsys
):
    cli_logs = tmp_path / "cli_logs.csv"
    shock = "4:creative_fatigue:0.4:feed"
    assert main(["simulate", "--days", "5", "--seed", "2", "--strategy", "pid", "--prior",
                 "true", "--shock-day", shock, "--out", str(cli_logs)]) == 0  # fmt: skip
    cli_json = tmp_path / "eval.json"
    assert main(["evaluate", "--strategies", "even,mpc", "--episodes", "1", "--seed", "4",
                 "--prior", "true", "--no-progress", "--json", str(cli_json)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["diagnose", "--history", str(cli_logs), "--json"]) == 0
    cli_diagnosis = json.loads(capsys.readouterr().out)
    got: dict = {"progress": {"simulate": [], "evaluate": []}}

    async def body(s: Session) -> None:
        async def on(kind):
            async def record(progress, total, message):
                got["progress"][kind].append((progress, total, message))

            return record

        got["simulate"] = await s.ok(
            "simulate_logs",
            {"out": "sim/logs.csv", "days": 5, "seed": 2, "strategy": "pid", "prior": "true",
             "shock_days": [shock]},
            progress=await on("simulate"),
        )  # fmt: skip
        got["evaluate"] = await s.ok(
            "evaluate_strategies",
            {"strategies": ["even", "mpc"], "episodes": 1, "seed": 4, "prior": "true"},
            progress=await on("evaluate"),
        )
        got["diagnose"] = await s.ok("diagnose_roi", {"history": "sim/logs.csv"})

    drive(workspace, body)
    assert (workspace / "sim" / "logs.csv").read_bytes() == cli_logs.read_bytes()
    assert got["simulate"]["rows"] == len(pd.read_csv(cli_logs))
    simulate_progress = got["progress"]["simulate"]
    assert [p for p, _, _ in simulate_progress] == [1, 2, 3, 4, 5]
    assert all(total == 5 for _, total, _ in simulate_progress)
    # Three episodes: even, mpc and the oracle that every evaluation runs.
    assert [p for p, _, _ in got["progress"]["evaluate"]] == [1, 2, 3]
    report = json.loads(cli_json.read_text())
    for name in ("even", "mpc"):
        assert (
            got["evaluate"]["scenarios"]["default"]["strategies"][name]
            == report["scenarios"]["default"]["strategies"][name]
        )
    assert "default" in got["evaluate"]["table"]
    diagnosis = {k: v for k, v in got["diagnose"].items() if k != "report"}
    assert diagnosis == cli_diagnosis
    assert diagnosis["drop_found"] and "ROI diagnosis" in got["diagnose"]["report"]


# -- HTTP --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_serves_on_loopback(workspace):
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    server = subprocess.Popen(
        [AUTOPILOT, "mcp", "--workspace", str(workspace), "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    got: dict = {}

    async def run() -> None:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(200):  # the server imports for a few seconds
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        async with streamable_http_client(url) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                got["tools"] = {t.name for t in listed.tools}
                got["presets"] = (await Session(session).ok("list_scenarios"))["presets"]

    try:
        anyio.run(run)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert got["tools"] == TOOLS
    assert any(p["name"] == "default" for p in got["presets"])


@pytest.mark.parametrize("address", ["0.0.0.0:8765", "192.168.1.7:8765"])
def test_a_remote_address_needs_allow_remote(address, workspace, capsys):
    message = cli_error(capsys, ["mcp", "--workspace", str(workspace), "--http", address])
    assert "--allow-remote" in message


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost:", ":80", "127.0.0.1:70000"])
def test_a_malformed_address_is_refused(address, workspace, capsys):
    assert "HOST:PORT" in cli_error(
        capsys, ["mcp", "--workspace", str(workspace), "--http", address]
    )


def test_a_missing_workspace_is_refused(tmp_path, capsys):
    assert "not a folder" in cli_error(capsys, ["mcp", "--workspace", str(tmp_path / "nope")])


def test_the_remote_check_accepts_loopback_forms():
    from policies.cli.mcp import parse_http

    assert parse_http("127.0.0.1:8000", False) == ("127.0.0.1", 8000, True)
    assert parse_http("[::1]:8000", False) == ("::1", 8000, True)
    assert parse_http("localhost:8000", False) == ("localhost", 8000, True)
    assert parse_http("0.0.0.0:8000", True) == ("0.0.0.0", 8000, False)


def test_live_bids_match_autopilot_live_and_refuse_outside_paths(workspace, tmp_path, capsys):
    (workspace / "campaign.toml").write_text(
        'budget = "40k"\nroi_target = 4\nstart = 2026-01-19T00:00:00\nhorizon_hours = 12\n'
    )
    seen: dict = {}

    async def body(s: Session) -> None:
        seen["first"] = await s.ok(
            "live_bids", {"campaign": "campaign.toml", "history": "logs.csv", "out": "next.csv"}
        )
        await s.refused(
            "live_bids",
            {"campaign": "campaign.toml", "history": "logs.csv", "out": "../next.csv"},
            "workspace",
        )
        await s.refused(
            "live_bids",
            {"campaign": "campaign.toml", "history": "logs.csv", "out": "logs.csv"},
        )

    before = snapshot(tmp_path / "outside")
    drive(workspace, body)
    assert snapshot(tmp_path / "outside") == before
    first = seen["first"]
    assert first["hour_index"] == 0 and first["hours_left"] == 12 and first["path"] == "next.csv"
    argv = ["live", "--campaign", str(workspace / "campaign.toml"), "--history",
            str(workspace / "logs.csv"), "--out", str(tmp_path / "cli.csv")]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    cli = json.loads((tmp_path / "cli.json").read_text())
    tool = json.loads((workspace / "next.json").read_text())
    cli.pop("run_id"), tool.pop("run_id")
    assert tool == cli
    pd.testing.assert_frame_equal(
        pd.read_csv(workspace / "next.csv").drop(columns="run_id"),
        pd.read_csv(tmp_path / "cli.csv").drop(columns="run_id"),
    )
    assert [row["bid"] for row in first["bids"]] == list(pd.read_csv(tmp_path / "cli.csv")["bid"])
