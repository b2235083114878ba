"""The front of a test Azure Container Registry: HTTPS under the ACR-named host, answering ACR's
token exchange itself and forwarding everything else to a real registry (distribution, with TLS
and basic auth for the all-zero user and the refresh token this front hands out).

POST /oauth2/exchange (grant_type=access_token, service, tenant, access_token) answers
{"refresh_token": ...} when the Entra ID token is the one the test authority issued, for this
registry's name and the test tenant; otherwise 401 with ACR's error shape. Every other request
is forwarded with its headers (Authorization and Host included) and its body streamed, chunked
or not; the answer is streamed back the same way.

Writes the bound port to --port-file; appends one line per request to --log ("exchange ok",
"exchange refused: <why>", "<METHOD> <path> <status>"), never a secret.
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers about one connection, not the request: not forwarded either way.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
PIECE = 64 * 1024


def arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    names = ["port-file", "log", "cert", "key", "backend", "backend-ca", "service", "tenant"]
    for name in names + ["access-token", "refresh-token"]:
        parser.add_argument("--" + name, required=True)
    return parser.parse_args()


def exchange_refusal(args, form):
    """Why an exchange is refused, or None."""
    field = lambda name: form.get(name, [""])[0]
    if field("grant_type") != "access_token":
        return f"grant_type is {field('grant_type')!r}"
    if field("service") != args.service:
        return f"service is {field('service')!r}, not {args.service!r}"
    if field("tenant") != args.tenant:
        return f"tenant is {field('tenant')!r}"
    if field("access_token") != args.access_token:
        return "the access token is not the one the authority issued"
    return None


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        if self.path.split("?")[0] == "/oauth2/exchange":
            return self.exchange()
        self.proxy()

    def exchange(self):
        form = urllib.parse.parse_qs(b"".join(self.body()).decode(), keep_blank_values=True)
        why = exchange_refusal(self.server.args, form)
        if why is None:
            self.record("exchange ok")
            return self.json(200, {"refresh_token": self.server.args.refresh_token})
        self.record("exchange refused: " + why)
        self.json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "exchange refused: " + why}]})

    def json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        """The request body in pieces, as it arrives: chunked, or Content-Length bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            piece = self.rfile.read(min(left, PIECE))
            if not piece:
                raise ConnectionError("the client closed the connection mid-body")
            left -= len(piece)
            yield piece

    def proxy(self):
        args = self.server.args
        host, port = args.backend.rsplit(":", 1)
        backend = http.client.HTTPSConnection(host, int(port), context=self.server.backend_tls, timeout=300)
        try:
            self.send_upstream(backend)
            self.send_back(backend.getresponse())
        except (OSError, http.client.HTTPException) as e:
            self.record(f"{self.command} {self.path} failed: {e}")
            self.close_connection = True
        finally:
            backend.close()

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = proxy

    def send_upstream(self, backend):
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        backend.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP:
                backend.putheader(name, value)
        if chunked:
            backend.putheader("Transfer-Encoding", "chunked")
        backend.endheaders()
        for piece in self.body():
            backend.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            backend.send(b"0\r\n\r\n")

    def send_back(self, response):
        self.record(f"{self.command} {self.path} {response.status}")
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        sized = response.getheader("Content-Length") is not None
        if not bodiless and not sized:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        while piece := response.read(PIECE):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if not sized else piece)
        if not sized:
            self.wfile.write(b"0\r\n\r\n")

    def record(self, line):
        with self.server.log_lock, open(self.server.args.log, "a") as log:
            log.write(line + "\n")

    def log_message(self, format, *args):
        pass


class TlsServer(ThreadingHTTPServer):
    """Each connection's TLS handshake runs in its own thread, so a slow client stalls no other."""

    daemon_threads = True

    def finish_request(self, request, client_address):
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


def main():
    args = arguments()
    server = TlsServer(("127.0.0.1", 0), Front)
    server.args = args
    server.log_lock = threading.Lock()
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.load_cert_chain(args.cert, args.key)
    server.backend_tls = ssl.create_default_context(cafile=args.backend_ca)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
