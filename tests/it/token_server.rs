//! A small token service for the registry's `auth: token` mode, so the real bearer flow
//! (realm, service, scopes, basic credentials, the OAuth2 refresh-token grant, expiry) runs
//! against Debian's docker-registry. It signs ES256 JWTs with a key made by openssl and
//! records every request for the tests to check.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

use crate::util::*;

pub const SERVICE: &str = "kubectl-ko-test";
pub const ISSUER: &str = "kubectl-ko-test-issuer";

/// One request the service answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub method: String,
    pub scopes: Vec<String>,
    /// The user whose password (or refresh token) was checked; `None` when anonymous.
    pub user: Option<String>,
    pub refresh_grant: bool,
}

struct State {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    user: String,
    password: String,
    refresh_token: String,
    expire_next_push: AtomicBool,
    requests: Mutex<Vec<TokenRequest>>,
}

pub struct TokenServer {
    pub realm: String,
    state: Arc<State>,
}

fn openssl(args: &[&str], dir: &Path) {
    KoCmd::program(tool("openssl")).args(args).cwd(dir).run().assert_success();
}

impl TokenServer {
    /// Makes a signing key and certificate in `dir` (the registry trusts `dir/token.crt`) and
    /// serves on a free loopback port, for as long as the test process lives.
    pub fn start(dir: &Path, user: &str, password: &str, refresh_token: &str) -> TokenServer {
        openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "token.key"], dir);
        openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", "token.key", "-outform", "DER", "-out", "token.p8"], dir);
        let subject = "/CN=kubectl-ko-test-token";
        openssl(
            &["req", "-x509", "-new", "-key", "token.key", "-subj", subject, "-days", "2", "-out", "token.crt"],
            dir,
        );
        openssl(&["x509", "-in", "token.crt", "-outform", "DER", "-out", "token.der"], dir);
        let rng = SystemRandom::new();
        let pkcs8 = std::fs::read(dir.join("token.p8")).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).expect("token key");
        let state = Arc::new(State {
            key,
            cert_der: std::fs::read(dir.join("token.der")).unwrap(),
            user: user.into(),
            password: password.into(),
            refresh_token: refresh_token.into(),
            expire_next_push: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token service");
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let serving = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = serving.clone();
                std::thread::spawn(move || {
                    let _ = handle(&state, stream);
                });
            }
        });
        TokenServer { realm, state }
    }

    /// The next token granting push is already expired (as if it ran out mid-push).
    pub fn expire_next_push_token(&self) {
        self.state.expire_next_push.store(true, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn handle(state: &State, mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/token" {
        return respond(&mut stream, "404 Not Found", r#"{"error":"not found"}"#);
    }
    let params = if method == "POST" { query_pairs(&String::from_utf8_lossy(&body)) } else { query_pairs(query) };
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let refresh_grant = param("grant_type").as_deref() == Some("refresh_token");

    let user = if refresh_grant {
        if param("refresh_token").as_deref() != Some(state.refresh_token.as_str()) {
            return respond(&mut stream, "401 Unauthorized", r#"{"error":"invalid refresh token"}"#);
        }
        Some(state.user.clone())
    } else if let Some(basic) = headers.get("authorization").and_then(|v| v.strip_prefix("Basic ")) {
        let decoded = String::from_utf8(STANDARD.decode(basic).unwrap_or_default()).unwrap_or_default();
        if decoded != format!("{}:{}", state.user, state.password) {
            return respond(
                &mut stream,
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong user name or password"}]}"#,
            );
        }
        Some(state.user.clone())
    } else {
        None
    };
    state.requests.lock().unwrap().push(TokenRequest {
        method,
        scopes: scopes.clone(),
        user: user.clone(),
        refresh_grant,
    });

    // Anonymous users get tokens that grant nothing.
    let access: Vec<serde_json::Value> = if user.is_some() {
        scopes
            .iter()
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let grants_push = scopes.iter().any(|s| s.ends_with("push"));
    let expired = grants_push && state.expire_next_push.swap(false, Ordering::SeqCst);
    // The registry allows a minute of clock skew, so an expired token is well in the past.
    let (iat, exp) = if expired { (now() - 600, now() - 300) } else { (now(), now() + 300) };
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&state.cert_der)]});
    let claims = json!({
        "iss": ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": SERVICE,
        "exp": exp,
        "nbf": iat,
        "iat": iat,
        "jti": format!("{}-{iat}", std::process::id()),
        "access": access,
    });
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = state.key.sign(&SystemRandom::new(), signing_input.as_bytes()).expect("sign the token");
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let body = if refresh_grant {
        json!({"access_token": token, "expires_in": 300})
    } else {
        json!({"token": token, "expires_in": 300})
    };
    respond(&mut stream, "200 OK", &body.to_string())
}
