"""``autopilot mcp``: serve the agent tools to an assistant over MCP (docs/mcp.md)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from envs.errors import InputError

#: Host names that mean this machine only.
LOOPBACK_NAMES = ("localhost",)


class ServeError(InputError):
    """A bad --http address, or a remote one without --allow-remote."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mcp",
        help="serve the autopilot's tools to an assistant over MCP (docs/mcp.md)",
        description="Start a Model Context Protocol server whose tools read, plan, explain, "
        "diagnose and apply bids inside one workspace folder. By default it speaks over "
        "standard input and output (an MCP client starts it); --http serves streamable "
        "HTTP on this machine only.",
    )
    parser.add_argument(
        "--workspace", required=True, help="the folder every tool reads and writes in"
    )
    parser.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio, e.g. "
        "127.0.0.1:8765 (loopback only unless --allow-remote)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --http address other than loopback: anyone who reaches it can plan "
        "and apply bids in the workspace (there is no authentication)",
    )
    parser.set_defaults(func=run)


def parse_http(text: str, allow_remote: bool) -> tuple[str, int, bool]:
    """``HOST:PORT`` -> (host, port, whether the host is loopback)."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ServeError(f"--http {text!r}: write HOST:PORT, e.g. 127.0.0.1:8765")
    if host in LOOPBACK_NAMES:
        loopback = True
    else:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback and not allow_remote:
        raise ServeError(
            f"--http {text!r} is reachable from other machines and the server has no "
            "authentication; use 127.0.0.1:PORT, or add --allow-remote if you mean it"
        )
    return host, int(port_text), loopback


def run(args: argparse.Namespace) -> int:
    from policies.agent_tools import Workspace

    workspace = Workspace(args.workspace)
    http = None if args.http is None else parse_http(args.http, args.allow_remote)
    from policies.mcp_server import build_server

    server = build_server(workspace)
    if http is None:
        server.run("stdio")
        return 0
    host, port, loopback = http
    if not loopback:
        print(
            f"autopilot mcp: warning: serving {workspace.root} to the network at {host}:{port} "
            "without authentication",
            file=sys.stderr,
        )
    print(f"autopilot mcp: serving http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    server.run("streamable-http", host=host, port=port)
    return 0
