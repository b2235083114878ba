//! The server side of Docker's credential-helper protocol, behind `docker-credential-ko`:
//! `store`, `get`, `erase`, `list` and `version`, JSON on stdin and stdout, errors on stdout
//! with exit status 1, and the literal [`NOT_FOUND`] for an unknown server (which Docker
//! treats as anonymous). `get` answers from the suite's store, then from the environment
//! ([`Keychain::environment`]: cloud registries and `GITHUB_TOKEN`), so Docker itself can use
//! the helper. Never from Docker's own
//! `config.json`: that names this helper, and would loop.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::keys::normalise_host;
use super::{AuthError, CredentialStore, Keychain, Secret};
use crate::settings::Environment;

/// What Docker's helpers say for an unknown server.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// What Docker's helpers say for a request without a server, and for credentials without a
/// user name: Docker's client recognises these texts.
const MISSING_SERVER: &str = "no credentials server URL";
const MISSING_USERNAME: &str = "no credentials username";

/// The usage line, for `--help` and for a call without exactly one action.
pub const USAGE: &str = "Usage: docker-credential-ko <store|get|erase|list|version>";

#[derive(Deserialize, Serialize)]
struct Payload {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs one helper action with the user's store and the sources of `env`. Everything goes to
/// `output`, as the protocol wants; `false` means exit status 1.
pub fn serve(action: &str, env: &Environment, input: &mut dyn Read, output: &mut dyn Write) -> bool {
    serve_with(action, input, output, &CredentialStore::new(env), &Keychain::environment(env))
}

/// [`serve`] over a given store and environment keychain.
pub fn serve_with(
    action: &str,
    input: &mut dyn Read,
    output: &mut dyn Write,
    store: &CredentialStore,
    env: &Keychain,
) -> bool {
    let result = answer(action, input, store, env);
    let (text, ok) = match result {
        Ok(text) => (text, true),
        Err(message) => (message, false),
    };
    let written = if text.is_empty() { Ok(()) } else { writeln!(output, "{text}") };
    written.and_then(|()| output.flush()).is_ok() && ok
}

fn answer(action: &str, input: &mut dyn Read, store: &CredentialStore, env: &Keychain) -> Result<String, String> {
    let mut raw = String::new();
    if matches!(action, "store" | "get" | "erase") {
        input.read_to_string(&mut raw).map_err(|e| format!("reading standard input: {e}"))?;
    }
    let server = raw.trim();
    let describe = |e: AuthError| e.to_string();
    match action {
        "store" => {
            let expects = "store expects {\"ServerURL\",\"Username\",\"Secret\"} on stdin";
            // An object, not the array serde would also take for the struct, field by field.
            let value: serde_json::Value = serde_json::from_str(server).map_err(|e| format!("{expects}: {e}"))?;
            if !value.is_object() {
                // Its kind only: the value may hold the secret, and Docker shows our errors.
                let kind = match value {
                    serde_json::Value::Array(_) => "a list",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                };
                return Err(format!("{expects}: a JSON object, not {kind}"));
            }
            let payload: Payload = serde_json::from_value(value).map_err(|e| format!("{expects}: {e}"))?;
            if payload.server_url.trim().is_empty() {
                return Err(MISSING_SERVER.into());
            }
            // Docker always sends a user name; `kubectl ko login -p TOKEN` stores a token alone.
            if payload.username.is_empty() && payload.secret.is_empty() {
                return Err(MISSING_USERNAME.into());
            }
            store
                .store(payload.server_url.trim(), &payload.username, &Secret::new(payload.secret))
                .map_err(describe)?;
            Ok(String::new())
        }
        "get" => {
            if server.is_empty() {
                return Err(MISSING_SERVER.into());
            }
            let (username, secret) = match store.get(server).map_err(describe)? {
                Some(stored) => (stored.username, stored.secret),
                None => match lookup(env, server).map_err(describe)? {
                    Some(found) => match found.credential {
                        super::Credential::Basic { username, password } => (username, password),
                        super::Credential::IdentityToken(token) => ("<token>".to_string(), token),
                        // Docker's helpers have no word for it.
                        super::Credential::RegistryToken(_) => return Err(NOT_FOUND.into()),
                    },
                    None => return Err(NOT_FOUND.into()),
                },
            };
            let payload = Payload { server_url: server.to_string(), username, secret: secret.expose().to_string() };
            Ok(serde_json::to_string(&payload).expect("the payload serialises"))
        }
        "erase" => {
            if server.is_empty() {
                return Err(MISSING_SERVER.into());
            }
            if store.erase(server).map_err(describe)? { Ok(String::new()) } else { Err(NOT_FOUND.into()) }
        }
        "list" => Ok(serde_json::to_string(&store.list().map_err(describe)?).expect("the list serialises")),
        "version" | "-v" | "--version" => {
            Ok(format!("docker-credential-ko (kubectl-ko) {}", env!("CARGO_PKG_VERSION")))
        }
        "-h" | "--help" => Ok(USAGE.to_string()),
        other => Err(format!("unknown action {other:?}; {USAGE}")),
    }
}

/// The environment's credential for `server`: the sources are async (a cloud source asks its
/// token service), the protocol is not, so this runs them on a runtime of its own.
fn lookup(env: &Keychain, server: &str) -> Result<Option<super::FoundCredential>, AuthError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AuthError::Protocol(format!("starting an async runtime: {e}")))?;
    runtime.block_on(env.lookup(&normalise_host(server)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::GithubToken;

    fn run(action: &str, input: &str, store: &CredentialStore, env: &Keychain) -> (bool, String) {
        let mut out = Vec::new();
        let ok = serve_with(action, &mut input.as_bytes(), &mut out, store, env);
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn store_get_list_erase_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("c.json"));
        let env = Keychain::with_sources(vec![Box::new(GithubToken::default())]);
        assert_eq!(run("get", "r.example\n", &store, &env), (false, format!("{NOT_FOUND}\n")));
        let (ok, out) = run("store", r#"{"ServerURL":"r.example","Username":"alice","Secret":"pw"}"#, &store, &env);
        assert!(ok && out.is_empty(), "{out}");
        let (ok, out) = run("get", "r.example", &store, &env);
        assert!(ok);
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(got["Username"], "alice");
        assert_eq!(got["Secret"], "pw");
        assert_eq!(got["ServerURL"], "r.example");
        let (ok, out) = run("list", "", &store, &env);
        assert!(ok);
        assert_eq!(out.trim(), r#"{"r.example":"alice"}"#);
        assert_eq!(run("erase", "r.example", &store, &env), (true, String::new()));
        assert!(!run("erase", "r.example", &store, &env).0);
        assert!(!run("get", "r.example", &store, &env).0);
    }

    #[test]
    fn bad_input_is_an_error_on_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("c.json"));
        let env = Keychain::with_sources(vec![Box::new(GithubToken::default())]);
        let (ok, out) = run("store", "not json", &store, &env);
        assert!(!ok && out.contains("store expects"), "{out}");
        let (ok, out) = run("store", r#"["r.example","alice","pw"]"#, &store, &env);
        assert!(!ok && out.contains("a JSON object, not a list") && !out.contains("pw"), "{out}");
        let (ok, out) = run("frobnicate", "", &store, &env);
        assert!(!ok && out.contains("unknown action"), "{out}");
        assert!(run("version", "", &store, &env).1.starts_with("docker-credential-ko"));
        assert!(run("--version", "", &store, &env).1.starts_with("docker-credential-ko"));
        assert_eq!(run("--help", "", &store, &env), (true, format!("{USAGE}\n")));
        // The texts Docker's client recognises.
        assert_eq!(run("get", "\n", &store, &env), (false, "no credentials server URL\n".into()));
        assert_eq!(run("erase", "", &store, &env), (false, "no credentials server URL\n".into()));
        let (ok, out) = run("store", r#"{"ServerURL":"","Username":"u","Secret":"s"}"#, &store, &env);
        assert_eq!((ok, out.as_str()), (false, "no credentials server URL\n"));
        let (ok, out) = run("store", r#"{"ServerURL":"r.example"}"#, &store, &env);
        assert_eq!((ok, out.as_str()), (false, "no credentials username\n"));
        // A user name with an empty secret is stored, as Docker's helpers store it.
        let (ok, out) = run("store", r#"{"ServerURL":"r.example","Username":"u","Secret":""}"#, &store, &env);
        assert!(ok && out.is_empty(), "{out}");
    }
}
