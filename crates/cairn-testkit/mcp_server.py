"""An MCP server for Cairn's tests, written with the official `mcp` SDK.

    python mcp_server.py stdio [--log PATH]
    python mcp_server.py http PORT [--log PATH] [--token TOKEN]

Tools: add, echo, record (appends its key to the log file: side effects are counted there),
slow (logs "start KEY", waits, then records), fail (reports an error) and sleep. Over HTTP, `--token` makes every request need
`Authorization: Bearer TOKEN`.
"""

import argparse
import asyncio

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError

parser = argparse.ArgumentParser()
parser.add_argument("transport", choices=["stdio", "http"])
parser.add_argument("port", nargs="?", type=int, default=0)
parser.add_argument("--log")
parser.add_argument("--token")
args = parser.parse_args()

server = FastMCP("cairn-test", host="127.0.0.1", port=args.port, log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Says the text back."""
    return text


@server.tool()
def record(key: str) -> str:
    """Records a side effect under key."""
    if args.log:
        with open(args.log, "a") as f:
            f.write(key + "\n")
    return "recorded " + key


@server.tool()
async def slow(key: str, seconds: float) -> str:
    """Records that a side effect began, waits, then records it done."""
    if args.log:
        with open(args.log, "a") as f:
            f.write("start " + key + "\n")
    await asyncio.sleep(seconds)
    return record(key)


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with reason."""
    raise ToolError(reason)


@server.tool()
async def sleep(seconds: float) -> str:
    """Waits, then says so."""
    await asyncio.sleep(seconds)
    return "slept"


def with_token(app, token):
    """ASGI middleware: 401 unless the request carries the bearer token."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != ("Bearer " + token).encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


if args.transport == "stdio":
    server.run("stdio")
else:
    import uvicorn

    app = server.streamable_http_app()
    if args.token:
        app = with_token(app, args.token)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")
