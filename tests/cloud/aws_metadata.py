"""The endpoints that hand a machine its AWS credentials, for the ECR tests in
tests/it/cloud/aws.rs: the container credentials endpoint (what ECS and EKS Pod Identity run)
and EC2's instance metadata service, version 2 (IMDSv2).

Usage: aws_metadata.py container TOKEN ACCESS_KEY_ID SECRET_ACCESS_KEY
       aws_metadata.py imds ACCESS_KEY_ID SECRET_ACCESS_KEY

container: GET on any path with the header `Authorization: TOKEN` answers the documented
credential document, anything else 401.
imds: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` gives a session
token; with it in `X-aws-ec2-metadata-token`, `GET /latest/meta-data/iam/security-credentials/`
lists the role `kubectl-ko-role` and `GET .../kubectl-ko-role` answers its credentials;
without it, 401 (IMDSv1 is off, as on current instances).

The documents carry no session `Token`: the key is a moto IAM user's, which a made-up
session token would invalidate. Prints one JSON line on stdout once listening:
{"port": N}, then one line "METHOD <path> <authorized>" on stderr per request. Runs until
stdin closes or it is killed.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1]
if MODE == "container":
    TOKEN, ACCESS_KEY_ID, SECRET_ACCESS_KEY = sys.argv[2:5]
else:
    TOKEN = None
    ACCESS_KEY_ID, SECRET_ACCESS_KEY = sys.argv[2:4]
IMDS_SESSION = "imds-session-4711"
ROLE = "kubectl-ko-role"
ROLES = "/latest/meta-data/iam/security-credentials/"


def credentials():
    return {
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": ACCESS_KEY_ID,
        "SecretAccessKey": SECRET_ACCESS_KEY,
        "Expiration": "2099-01-01T00:00:00Z",
    }


class Handler(BaseHTTPRequestHandler):
    def do_PUT(self):
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        authorized = MODE == "imds" and self.path == "/latest/api/token" and ttl is not None
        self.log(authorized)
        if authorized:
            self.answer(200, IMDS_SESSION.encode(), "text/plain")
        else:
            self.answer(400, b"bad request", "text/plain")

    def do_GET(self):
        if MODE == "container":
            authorized = self.headers.get("Authorization") == TOKEN
        else:
            authorized = self.headers.get("X-aws-ec2-metadata-token") == IMDS_SESSION
        self.log(authorized)
        if not authorized:
            self.answer(401, b"unauthorized", "text/plain")
        elif MODE == "imds" and self.path == ROLES:
            self.answer(200, f"{ROLE}\n".encode(), "text/plain")
        elif MODE == "imds" and self.path != ROLES + ROLE:
            self.answer(404, b"not found", "text/plain")
        else:
            self.answer(200, json.dumps(credentials()).encode(), "application/json")

    def log(self, authorized):
        print(f"{self.command} {self.path} {authorized}", file=sys.stderr, flush=True)

    def answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
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
