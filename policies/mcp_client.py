"""A blocking client for ``autopilot mcp``, for notebooks and scripts.

It starts ``autopilot mcp --workspace DIR`` as a subprocess and talks to it with the
``mcp`` SDK's own :class:`~mcp.ClientSession` over stdio, on an event loop in a
background thread (an anyio blocking portal), so that each call is one plain function
call, also across notebook cells::

    with ToolClient("my-workspace") as tools:
        plan = tools.call("recommend_bids", history="logs.csv", budget=50000,
                          roi_target=4, date="2026-01-19")
        tools.call("explain_plan", plan_id=plan["plan_id"])

A tool error raises :class:`ToolCallError` with the server's one-line message.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envs.errors import InputError


class ToolCallError(InputError):
    """A tool answered with an error (its message is the CLI's one line)."""


def server_command() -> list[str]:
    """The command that starts the server: this environment's ``autopilot``."""
    script = Path(sys.executable).with_name("autopilot")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "policies.cli"]


class ToolClient:
    """One ``autopilot mcp`` server on ``workspace``, and a session with it."""

    def __init__(self, workspace: str | os.PathLike[str], quiet: bool = True):
        self.workspace = Path(workspace)
        self.quiet = quiet
        self._stack: contextlib.ExitStack | None = None
        self._portal = None
        self._session = None

    def start(self) -> ToolClient:
        from anyio.from_thread import start_blocking_portal
        from mcp import ClientSession, StdioServerParameters, stdio_client

        if self._stack is not None:
            return self
        command, *args = server_command()
        params = StdioServerParameters(
            command=command, args=[*args, "mcp", "--workspace", str(self.workspace)]
        )
        stack = contextlib.ExitStack()
        try:
            portal = stack.enter_context(start_blocking_portal())
            errlog = stack.enter_context(open(os.devnull, "w")) if self.quiet else sys.stderr
            read, write = stack.enter_context(
                portal.wrap_async_context_manager(stdio_client(params, errlog=errlog))
            )
            session = stack.enter_context(
                portal.wrap_async_context_manager(ClientSession(read, write))
            )
            portal.call(session.initialize)
        except BaseException:
            stack.close()
            raise
        self._stack, self._portal, self._session = stack, portal, session
        return self

    def close(self) -> None:
        """Stop the session and the server."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> ToolClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._session is None or self._stack is None:
            raise RuntimeError("the client is not started; use `with ToolClient(...)` or start()")
        return self._portal.call(fn, *args)

    def tools(self) -> list[dict[str, Any]]:
        """Every tool: name, description and input schema."""
        listed = self._run(self._session.list_tools)
        return [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in listed.tools
        ]

    def call(
        self,
        name: str,
        /,
        progress: Callable[[float, float | None, str | None], None] | None = None,
        **arguments: Any,
    ) -> dict[str, Any]:
        """Call tool ``name``; ``progress(done, total, message)`` receives its progress."""

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            if progress is not None:
                progress(done, total, message)

        async def call() -> Any:
            return await self._session.call_tool(name, arguments, progress_callback=on_progress)

        result = self._run(call)
        text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
        if result.is_error:
            raise ToolCallError(f"{name}: {text}")
        return (
            result.structured_content if result.structured_content is not None else json.loads(text)
        )

    def read(self, uri: str) -> str:
        """The text of a resource, e.g. ``autopilot://workspace/latest-summary``."""
        result = self._run(self._session.read_resource, uri)
        return "".join(getattr(c, "text", "") for c in result.contents)
