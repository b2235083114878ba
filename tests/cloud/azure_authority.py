"""An Entra ID (Azure AD) authority for the ACR tests: answers the client credentials grant at
POST /<tenant>/oauth2/v2.0/token as Microsoft's identity platform documents it, for one client
that proves itself with a known client secret or a known federated token (client assertion),
with Entra's error shapes ({"error", "error_description": "AADSTS...\\r\\nTrace ID: ..."}).

Serves plain HTTP on 127.0.0.1 (AZURE_AUTHORITY_HOST=http://127.0.0.1:PORT/), writes the bound
port to --port-file, and appends one JSON line per request to --log (no secrets in it).
"""

import argparse
import json
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = "https://containerregistry.azure.net/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TRACE = "\r\nTrace ID: 00000000-0000-0000-0000-000000000001\r\nCorrelation ID: 00000000-0000-0000-0000-000000000002"


def arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ["port-file", "log", "tenant", "client-id", "client-secret", "assertion", "access-token"]:
        parser.add_argument("--" + name, required=True)
    return parser.parse_args()


def verdict(args, tenant, form):
    """(status, error, description) of a refusal, or (200, None, credential kind)."""
    field = lambda name: form.get(name, [""])[0]
    if tenant != args.tenant:
        return 400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found."
    if field("grant_type") != "client_credentials":
        return 400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type."
    if field("client_id") != args.client_id:
        return 400, "unauthorized_client", f"AADSTS700016: Application with identifier '{field('client_id')}' was not found in the directory."
    if field("scope") != SCOPE:
        return 400, "invalid_scope", f"AADSTS70011: The provided value for the input parameter 'scope' is not valid: {field('scope')}"
    if "client_secret" in form:
        if field("client_secret") == args.client_secret:
            return 200, None, "secret"
        return 401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."
    if field("client_assertion_type") == JWT_BEARER:
        if field("client_assertion") == args.assertion:
            return 200, None, "assertion"
        return 401, "invalid_client", "AADSTS700213: No matching federated identity record found for presented assertion."
    return 401, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."


class Authority(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            return self.reply(404, {"error": "not_found", "error_description": "no such endpoint"}, "", False)
        status, error, detail = verdict(self.server.args, urllib.parse.unquote(parts[0]), form)
        if error:
            return self.reply(status, {"error": error, "error_description": detail + TRACE}, error, False)
        token = self.server.args.access_token
        body = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        self.reply(200, body, detail, True)

    def reply(self, status, body, what, ok):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with open(self.server.args.log, "a") as log:
            log.write(json.dumps({"path": self.path, "ok": ok, "what": what}) + "\n")

    def log_message(self, format, *args):
        pass


def main():
    args = arguments()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Authority)
    server.daemon_threads = True
    server.args = args
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
