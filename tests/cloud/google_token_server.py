"""Google's token endpoints for the end-to-end tests, on loopback, following the documented
protocols: the OAuth 2.0 token endpoint (a service account's RS256 JWT assertion, RFC 7523,
checked against the public key of the test's key pair; the refresh-token grant), the Security
Token Service exchange (RFC 8693), IAM Credentials' generateAccessToken, and the metadata
server's default service account token (only with `Metadata-Flavor: Google`).

Usage: google_token_server.py CONFIG.json. The config names the one access token the registry
takes and what each path must be shown. With `source_token` set, the direct grants (JWT,
refresh token, metadata) hand out that token instead, which only impersonation turns into
the access token. The server prints its port on the first line of
stdout and appends one line per request to the config's `log` file.
"""

import base64
import datetime
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

CONFIG = json.load(open(sys.argv[1]))
app = Flask(__name__)


def log(line):
    with open(CONFIG["log"], "a") as f:
        f.write(line + "\n")


def refuse(error, description, status=400):
    log(f"refused {request.path}: {error}: {description}")
    return jsonify(error=error, error_description=description), status


def token_answer(token):
    return jsonify(access_token=token, expires_in=3599, token_type="Bearer")


def granted():
    """The token of a direct grant."""
    return CONFIG.get("source_token") or CONFIG["access_token"]


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_assertion(assertion):
    """None when the JWT is what Google's token endpoint accepts, else why not."""
    try:
        header, claims, signature = assertion.split(".")
        public = serialization.load_pem_public_key(open(CONFIG["public_key"], "rb").read())
        public.verify(b64url(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        header, claims = json.loads(b64url(header)), json.loads(b64url(claims))
    except Exception as e:  # a bad signature or encoding
        return f"Invalid JWT Signature. ({type(e).__name__})"
    now = time.time()
    expected = {
        "alg": header.get("alg") == "RS256",
        "kid": header.get("kid") == CONFIG["private_key_id"],
        "iss": claims.get("iss") == CONFIG["client_email"],
        "scope": claims.get("scope") == SCOPE,
        "aud": claims.get("aud") == f"http://{request.host}/token",
        "iat": abs(claims.get("iat", 0) - now) < 300,
        "exp": claims.get("exp", 0) - claims.get("iat", 0) == 3600,
    }
    wrong = [name for name, ok in expected.items() if not ok]
    return f"Invalid JWT: wrong {', '.join(wrong)}" if wrong else None


def jwt_bearer(form):
    problem = check_assertion(form.get("assertion", ""))
    if problem:
        return refuse("invalid_grant", problem)
    log("token jwt-bearer")
    return token_answer(granted())


def refresh_token(form):
    user = CONFIG["user"]
    given = {k: form.get(k) for k in ("client_id", "client_secret", "refresh_token")}
    if given != user:
        return refuse("invalid_grant", "Bad Request")
    log("token refresh_token")
    return token_answer(granted())


def token_exchange(form):
    sts = CONFIG["sts"]
    checks = {
        "audience": form.get("audience") == sts["audience"],
        "subject_token": form.get("subject_token") == sts["subject_token"],
        "subject_token_type": form.get("subject_token_type") == sts["subject_token_type"],
        "scope": form.get("scope") == SCOPE,
        "requested_token_type": form.get("requested_token_type") == ACCESS_TOKEN_TYPE,
    }
    wrong = [name for name, ok in checks.items() if not ok]
    if wrong:
        return refuse("invalid_request", f"wrong {', '.join(wrong)}")
    log("token token-exchange")
    return jsonify(access_token=sts["federated_token"], issued_token_type=ACCESS_TOKEN_TYPE,
                   token_type="Bearer", expires_in=3599)


@app.post("/token")
def token():
    if CONFIG.get("fail"):
        return refuse("invalid_grant", "Invalid grant: account not found")
    if request.content_type != "application/x-www-form-urlencoded":
        return refuse("invalid_request", "not a form")
    grants = {JWT_BEARER: jwt_bearer, "refresh_token": refresh_token, TOKEN_EXCHANGE: token_exchange}
    grant = grants.get(request.form.get("grant_type"))
    if grant is None:
        return refuse("unsupported_grant_type", "Invalid grant_type")
    return grant(request.form)


@app.post("/v1/projects/-/serviceAccounts/<name>")
def generate_access_token(name):
    expected = f"{CONFIG['sts']['service_account']}:generateAccessToken"
    callers = [CONFIG["sts"]["federated_token"], CONFIG.get("source_token")]
    bearer = request.headers.get("Authorization") in [f"Bearer {t}" for t in callers if t]
    body = request.get_json(silent=True) or {}
    if name != expected or not bearer or body.get("scope") != [SCOPE] or body.get("lifetime") != "3600s":
        log(f"refused impersonation of {name}")
        return jsonify(error={"code": 403, "message": "Permission denied.", "status": "PERMISSION_DENIED"}), 403
    log("generateAccessToken")
    expire = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    return jsonify(accessToken=CONFIG["access_token"], expireTime=expire.strftime("%Y-%m-%dT%H:%M:%SZ"))


@app.get("/computeMetadata/v1/instance/service-accounts/default/token")
def metadata_token():
    if request.headers.get("Metadata-Flavor") != "Google":
        log("refused metadata without Metadata-Flavor")
        return "Missing Metadata-Flavor:Google header.", 403
    log("metadata token")
    return token_answer(granted())


@app.get("/subject-token")
def subject_token():
    """A credential_source.url: the subject token as JSON, for a caller showing the header."""
    if request.headers.get("X-Subject-Token-Request") != "ko":
        log("refused subject-token without its header")
        return "Forbidden", 403
    log("subject-token")
    return jsonify(id_token=CONFIG["sts"]["subject_token"])


def main():
    server = make_server("127.0.0.1", 0, app)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
