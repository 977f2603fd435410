"""A webhook receiver written from the README alone ("Verifying webhooks"), with nothing but
Python's standard library. Usage: webhook_receiver.py PORT SECRET. Answers 204 to a delivery
whose signature verifies, 401 otherwise, and prints one line per delivery to stdout."""

import base64
import hashlib
import hmac
import http.server
import sys
import time

PORT, SECRET = int(sys.argv[1]), sys.argv[2]
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        msg_id = self.headers.get("webhook-id", "")
        timestamp = self.headers.get("webhook-timestamp", "0")
        expected = base64.b64encode(
            hmac.new(KEY, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        offered = [s.split(",", 1)[1] for s in self.headers.get("webhook-signature", "").split() if s.startswith("v1,")]
        fresh = abs(time.time() - int(timestamp)) < 300
        valid = fresh and any(hmac.compare_digest(expected, s) for s in offered)
        print("valid" if valid else "invalid", msg_id, self.headers.get("x-cairn-tenant"), flush=True)
        self.send_response(204 if valid else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
