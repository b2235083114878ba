"""A container credentials endpoint (what ECS and EKS Pod Identity run), for the ECR tests in
tests/it/cloud/aws.rs.

Usage: aws_container.py TOKEN ACCESS_KEY_ID SECRET_ACCESS_KEY

Serves GET on any path on a free loopback port: with the header `Authorization: TOKEN` it
answers the documented credential document, otherwise 401. The document has no session
`Token`: the key is a moto IAM user's, which a made-up session token would invalidate. Prints one JSON line on stdout
once listening: {"port": N}, then one line "GET <path> <authorized>" on stderr per request.
Runs until stdin closes or it is killed.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN, ACCESS_KEY_ID, SECRET_ACCESS_KEY = sys.argv[1:4]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        authorized = self.headers.get("Authorization") == TOKEN
        print(f"GET {self.path} {authorized}", file=sys.stderr, flush=True)
        if not authorized:
            self.answer(401, {"message": "unauthorized"})
            return
        self.answer(
            200,
            {
                "AccessKeyId": ACCESS_KEY_ID,
                "SecretAccessKey": SECRET_ACCESS_KEY,
                "Expiration": "2099-01-01T00:00:00Z",
            },
        )

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
