"""A stdio MCP server that misbehaves on purpose, one way per mode (argv[1]):

ok        answers well; tools/list in two pages; `echo` echoes
noise     prints lines that are not JSON between answers (servers that log to stdout)
version   answers initialize with a protocol version nobody speaks
silent    never answers tools/call
exit      exits when asked to call a tool
exit_once exits at its first tool call if file argv[2] does not exist (creating it)
huge      answers tools/call with a line over 4 MiB
many      lists 1001 tools
"""

import json
import sys

mode = sys.argv[1]


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    mid, method = msg["id"], msg.get("method")
    if mode == "noise":
        print("log: got " + str(method), flush=True)
    if method == "initialize":
        version = "1999-01-01" if mode == "version" else msg["params"]["protocolVersion"]
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "bad"}}})
        # A server may ping the client; the client must answer and go on.
        send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
    elif method == "tools/list":
        if mode == "many":
            tools = [{"name": "t%d" % i, "inputSchema": {"type": "object"}} for i in range(1001)]
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": tools}})
        elif msg.get("params", {}).get("cursor") == "page2":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
                {"name": "echo", "description": "Echoes.", "inputSchema": {
                    "type": "object", "properties": {"text": {"type": "string"}}}}]}})
        else:
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [{"name": "first"}], "nextCursor": "page2"}})
    elif method == "tools/call":
        if mode == "silent":
            continue
        if mode == "exit":
            sys.exit(3)
        if mode == "exit_once":
            import os
            if not os.path.exists(sys.argv[2]):
                open(sys.argv[2], "w").close()
                sys.exit(3)
        if mode == "huge":
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "x" * (5 << 20)}]}})
            continue
        text = msg["params"]["arguments"].get("text", "")
        meta = msg["params"].get("_meta", {})
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [
            {"type": "text", "text": text}, {"type": "text", "text": json.dumps(meta)}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no"}})
