"""A Streamable HTTP MCP server (standard library only) that, while answering `tools/call`
over SSE, first pings the client and answers the call only once the client's pong arrives as
a POST: the client must answer a server's request in the middle of a response. It records
the sessions ended with DELETE (a GET lists them, for the test).

    python sse_ping_server.py PORT
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

pong = threading.Event()
deleted = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, message, status=200):
        body = json.dumps(message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Mcp-Session-Id", "s-1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self):
        deleted.append(self.headers.get("Mcp-Session-Id"))
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        # Not MCP: how the test asks which sessions were ended.
        body = json.dumps(deleted).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "method" not in msg:  # a response from the client
            if msg.get("id") == "p1" and msg.get("result") == {}:
                pong.set()
            self.send_response(202)
            self.end_headers()
            return
        if "id" not in msg:  # a notification
            self.send_response(202)
            self.end_headers()
            return
        method, mid = msg["method"], msg["id"]
        if method == "initialize":
            self.send_json({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": "ping"}}})
        elif method == "tools/list":
            self.send_json({"jsonrpc": "2.0", "id": mid, "result": {"tools": [{"name": "echo"}]}})
        elif method == "tools/call":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            ping = {"jsonrpc": "2.0", "id": "p1", "method": "ping"}
            self.wfile.write(("data: " + json.dumps(ping) + "\n\n").encode())
            self.wfile.flush()
            text = "pong received" if pong.wait(5) else "no pong"
            result = {"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}}
            self.wfile.write(("event: message\ndata: " + json.dumps(result) + "\n\n").encode())
            self.wfile.flush()
        else:
            self.send_json({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no"}})


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
