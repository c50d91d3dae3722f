"""``autopilot mcp``: the agent tools (:mod:`policies.agent_tools`) over the Model Context
Protocol, built on the official ``mcp`` SDK's high-level :class:`MCPServer`.

Every tool runs in a worker thread (the MPC solve and the simulator are blocking numpy
and cvxpy work), one at a time; long tools (simulate, evaluate) report MCP progress.
A user error comes back as a tool error (``is_error``) carrying the CLI's one-line
message; an unexpected failure as a one-line tool error too, its traceback only in the
server's log (standard error). The server keeps serving after any bad call.
"""

from __future__ import annotations

import inspect
import logging
import re
import typing
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations

from envs.errors import InputError
from policies.agent_tools import MAX_PLAN_FILE_BYTES, AgentTools, Workspace, log_format_text

logger = logging.getLogger("budget_autopilot.mcp")

INSTRUCTIONS = (
    "Ad-budget autopilot for one advertiser's workspace. Typical flow: diagnose_roi on the "
    "history to explain yesterday, recommend_bids for tomorrow's plan (budget is a hard "
    "limit, ROI target = GMV / spend), explain_plan and what_if to discuss it, apply_bids "
    "once the user approves. simulate_logs makes a history from a preset scenario to try "
    "things on; evaluate_strategies compares strategies against the oracle. Paths are "
    "relative to the workspace."
)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_message(err: BaseException) -> str:
    """The one-line message the CLI prints for ``err`` (after ``autopilot CMD: error:``)."""
    if isinstance(err, InputError):
        return _one_line(str(err))
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return _one_line(
            f"{where}{err.strerror or err}; check the path, its permissions and the free space"
        )
    return _one_line(
        f"internal error ({type(err).__name__}); the call did nothing, the server keeps "
        "serving; please report it with the server's log"
    )


def _result(data: dict[str, Any]) -> CallToolResult:
    import json

    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data, indent=1, allow_nan=False))],
        structured_content=data,
    )


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _tool(tools: AgentTools, name: str) -> Tool:
    """An MCP tool from the method ``name``: its typed parameters become the JSON schema,
    its docstring the description."""
    method = getattr(tools, name)
    hints = typing.get_type_hints(method, include_extras=True)
    signature = inspect.signature(method)
    params = [
        p.replace(annotation=hints.get(p.name, Any))
        for p in signature.parameters.values()
        if p.name != "on_progress"
    ]
    takes_progress = "on_progress" in signature.parameters

    async def call(ctx: Context, **arguments: Any) -> CallToolResult:
        progress: Callable[[float, float, str], None] | None = None
        if takes_progress:

            def progress(done: float, total: float, message: str) -> None:
                anyio.from_thread.run(ctx.report_progress, done, total, message)

        try:
            data = await anyio.to_thread.run_sync(lambda: tools.call(name, arguments, progress))
        except Exception as err:  # every failure becomes one line; the server keeps serving
            if not isinstance(err, (InputError, OSError)):
                logger.exception("tool %s failed", name)
            return _error(error_message(err))
        return _result(data)

    ctx_param = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*keyword, ctx_param], return_annotation=CallToolResult
    )
    call.__name__ = name
    read_only = name in AgentTools.READ_ONLY
    return Tool.from_function(
        call,
        name=name,
        description=inspect.cleandoc(method.__doc__ or ""),
        context_kwarg="ctx",
        annotations=ToolAnnotations(
            read_only_hint=read_only,
            destructive_hint=False,
            idempotent_hint=read_only,
            open_world_hint=False,
        ),
        structured_output=False,
    )


class AutopilotServer(MCPServer):
    """:class:`MCPServer` whose tool errors are always one line (the SDK's own argument
    validation errors span several)."""

    async def _handle_call_tool(self, ctx, params):  # type: ignore[override]
        result = await super()._handle_call_tool(ctx, params)
        if isinstance(result, CallToolResult) and result.is_error:
            text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
            text = re.sub(r"For further information visit \S+", "", text)
            result = _error(_one_line(text))
        return result


def build_server(workspace: str | Workspace) -> AutopilotServer:
    """The MCP server of one workspace: the tools of :class:`AgentTools` and resources."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own_version = version("budget-autopilot")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        own_version = "0"
    tools = AgentTools(workspace)
    server = AutopilotServer(
        "budget-autopilot",
        instructions=INSTRUCTIONS,
        version=own_version,
        tools=[_tool(tools, name) for name in AgentTools.TOOLS],
        log_level="WARNING",
    )

    def presets() -> str:
        import json

        return json.dumps(tools.list_scenarios()["presets"], indent=1) + "\n"

    def latest(kind: str) -> Callable[[], str]:
        def read() -> str:
            from envs.io import read_input_bytes

            found = tools.latest_plan()
            if found is None:
                return "" if kind == "table" else "{}\n"
            _, table, summary = found
            path = table if kind == "table" else summary
            return read_input_bytes(path, "recommendation", MAX_PLAN_FILE_BYTES).decode("utf-8")

        return read

    for uri, name, description, mime, fn in (
        (
            "autopilot://docs/log-format",
            "log-format",
            "the hourly performance log format that recommend_bids and diagnose_roi read",
            "text/markdown",
            log_format_text,
        ),
        (
            "autopilot://presets",
            "presets",
            "the built-in market scenarios with their arms, budget and ROI target",
            "application/json",
            presets,
        ),
        (
            "autopilot://workspace/latest-recommendation",
            "latest-recommendation",
            "the newest plan's bid table (CSV; empty before the first recommend_bids)",
            "text/csv",
            latest("table"),
        ),
        (
            "autopilot://workspace/latest-summary",
            "latest-summary",
            "the newest plan's summary (JSON; {} before the first recommend_bids)",
            "application/json",
            latest("summary"),
        ),
    ):
        server.add_resource(
            FunctionResource(uri=uri, name=name, description=description, mime_type=mime, fn=fn)
        )
    return server
