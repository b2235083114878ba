//! Google's token endpoints for the tests: tests/cloud/google_token_server.py (OAuth 2.0
//! token endpoint, STS, IAM Credentials, metadata server) run with the cloud venv's Python on
//! a loopback port, with a service account key pair openssl makes for the test and one
//! access token, made for the test, that every path hands out. Each kind of Application
//! Default Credentials file is written here, pointing at the server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::util::*;

pub const CLIENT_EMAIL: &str = "ko-builder@kotest.iam.gserviceaccount.com";
pub const PRIVATE_KEY_ID: &str = "0123456789abcdef";
const IMPERSONATED: &str = "ko-pusher@kotest.iam.gserviceaccount.com";
const AUDIENCE: &str = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/ko";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A value no other test or run uses, to look for in output.
fn secret(label: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}-{}-{nanos:x}", std::process::id())
}

/// How the server answers.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    /// Every grant hands out the access token.
    Answer,
    /// The token endpoint refuses every grant (`invalid_grant`).
    Refuse,
    /// Direct grants hand out a source token that only impersonation turns into the access token.
    Impersonate,
}

pub struct GoogleTokens {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub dir: TempDir,
    /// The access token every path hands out: the registry's password.
    pub access_token: String,
    config: Value,
}

impl GoogleTokens {
    /// A server that answers as Google does, in `mode`.
    pub fn start(mode: Mode) -> GoogleTokens {
        let dir = tempfile::Builder::new().prefix("ko-e2e-google-").tempdir().unwrap();
        let openssl = |args: &[&str]| {
            KoCmd::program(tool("openssl")).args(args).cwd(dir.path()).run().assert_success();
        };
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.pem"]);
        openssl(&["pkey", "-in", "sa.pem", "-pubout", "-out", "sa.pub.pem"]);
        let access_token = secret("ya29");
        let config = json!({
            "access_token": access_token, "fail": mode == Mode::Refuse, "log": dir.path().join("requests.log"),
            "source_token": (mode == Mode::Impersonate).then(|| secret("source")),
            "public_key": dir.path().join("sa.pub.pem"), "client_email": CLIENT_EMAIL, "private_key_id": PRIVATE_KEY_ID,
            "user": {"client_id": "kotest.apps.googleusercontent.com", "client_secret": secret("client-secret"),
                     "refresh_token": secret("refresh")},
            "sts": {"audience": AUDIENCE, "subject_token": secret("subject"), "subject_token_type": JWT_TYPE,
                    "federated_token": secret("federated"), "service_account": IMPERSONATED},
        });
        let config_file = dir.path().join("config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        std::fs::write(dir.path().join("requests.log"), "").unwrap();
        let (child, port) = spawn(&config_file, &dir.path().join("server.log"));
        GoogleTokens { child, url: format!("http://127.0.0.1:{port}"), dir, access_token, config }
    }

    /// One line per request the server answered (`token jwt-bearer`, `refused ...`).
    pub fn requests(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap()
    }

    /// The secrets besides the access token, none of which may be printed.
    pub fn secrets(&self) -> Vec<String> {
        let key = std::fs::read_to_string(self.dir.path().join("sa.pem")).unwrap();
        let mut secrets = vec![key.lines().nth(1).unwrap().to_string(), self.access_token.clone()];
        for (section, field) in [("user", "client_secret"), ("user", "refresh_token"), ("sts", "subject_token")] {
            secrets.push(self.config[section][field].as_str().unwrap().to_string());
        }
        for token in [&self.config["sts"]["federated_token"], &self.config["source_token"]] {
            secrets.extend(token.as_str().map(str::to_string));
        }
        secrets
    }

    /// A service account key file as the console downloads it, with the test's key.
    pub fn service_account_file(&self) -> PathBuf {
        let key = std::fs::read_to_string(self.dir.path().join("sa.pem")).unwrap();
        let file = json!({
            "type": "service_account", "project_id": "kotest", "private_key_id": PRIVATE_KEY_ID,
            "private_key": key, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": format!("{}/token", self.url),
        });
        self.write("service-account.json", &file)
    }

    /// What `gcloud auth application-default login` writes.
    pub fn authorized_user_json(&self) -> String {
        let mut file = self.config["user"].clone();
        file["type"] = json!("authorized_user");
        file["token_uri"] = json!(format!("{}/token", self.url));
        file.to_string()
    }

    /// A workload identity federation file with service account impersonation, reading its
    /// subject token from a file (text), or from the server's URL (JSON) with a header.
    pub fn external_account_file(&self, from_url: bool) -> PathBuf {
        let subject = self.dir.path().join("subject-token");
        std::fs::write(&subject, self.config["sts"]["subject_token"].as_str().unwrap()).unwrap();
        let source = match from_url {
            false => json!({"file": subject}),
            true => json!({"url": format!("{}/subject-token", self.url), "headers": {"X-Subject-Token-Request": "ko"},
                           "format": {"type": "json", "subject_token_field_name": "id_token"}}),
        };
        let file = json!({
            "type": "external_account", "audience": AUDIENCE, "subject_token_type": JWT_TYPE,
            "token_url": format!("{}/token", self.url), "credential_source": source,
            "service_account_impersonation_url": self.impersonation_url(),
        });
        self.write("external-account.json", &file)
    }

    /// What `gcloud auth application-default login --impersonate-service-account` writes.
    pub fn impersonated_file(&self) -> PathBuf {
        let source: Value = serde_json::from_str(&self.authorized_user_json()).unwrap();
        let file = json!({
            "type": "impersonated_service_account", "delegates": [],
            "service_account_impersonation_url": self.impersonation_url(), "source_credentials": source,
        });
        self.write("impersonated.json", &file)
    }

    fn impersonation_url(&self) -> String {
        format!("{}/v1/projects/-/serviceAccounts/{IMPERSONATED}:generateAccessToken", self.url)
    }

    /// `host:port` for `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    fn write(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
        path
    }
}

/// Starts the server and reads the port it printed; panics with its log when it does not start.
fn spawn(config: &std::path::Path, log: &std::path::Path) -> (Child, u16) {
    let python = cloud_venv().join("bin/python");
    let mut child = Command::new(&python)
        .arg(workspace().join("tests/cloud/google_token_server.py"))
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the Google token server did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default())
    });
    (child, port)
}

impl Drop for GoogleTokens {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
