//! A test Azure Container Registry on loopback: the Entra ID authority
//! (tests/cloud/azure_authority.py, plain HTTP, `AZURE_AUTHORITY_HOST`), and under the
//! ACR-named host (`kotest.azurecr.io`, mapped to 127.0.0.1) an HTTPS front
//! (tests/cloud/azure_front.py) that answers `/oauth2/exchange` itself and forwards everything
//! else to a real registry with TLS and basic auth for the all-zero user and the refresh token.
//! The client sees `https://kotest.azurecr.io:PORT` with a certificate of a CA made for the test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tempfile::TempDir;

use crate::registries::{AuthRegistry, certificate};
use crate::util::*;

/// The user name ACR takes with a refresh token.
pub const USERNAME: &str = "00000000-0000-0000-0000-000000000000";
pub const CLIENT_ID: &str = "6a0f1c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One of the harness's Python servers, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `tests/cloud/<script>` with `--name value` arguments and waits for the port it
    /// bound (written to a file); panics with its stderr when it exits instead.
    fn start(dir: &Path, script: &str, args: &[(&str, &str)]) -> Server {
        let port_file = dir.join(format!("{script}.port"));
        let stderr_file = dir.join(format!("{script}.stderr"));
        let mut cmd = Command::new(cloud_venv().join("bin/python"));
        cmd.arg(workspace().join("tests/cloud").join(script)).arg("--port-file").arg(&port_file);
        for (name, value) in args {
            cmd.arg(format!("--{name}")).arg(value);
        }
        let stderr = File::create(&stderr_file).unwrap();
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn();
        let mut server = Server { child: child.unwrap_or_else(|e| panic!("cannot start {script}: {e}")), port: 0 };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.port == 0 {
            if let Some(port) = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()) {
                server.port = port;
            } else if let Some(status) = server.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&stderr_file).unwrap_or_default();
                panic!("{script} exited ({status}) before it listened:\n{log}");
            } else {
                assert!(Instant::now() < deadline, "{script} did not listen within 30 s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A value made for this test (so a test can look for it in any output).
fn made(label: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}-{}-{:x}", std::process::id(), nanos % (1 << 40))
}

/// A refresh token shaped as ACR's (a JWT) that expires in three hours. bcrypt reads only 72
/// bytes of a password, so it stays shorter than that.
fn refresh_token() -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3 * 3600;
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#));
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let token = format!("eyJhbGciOiJub25lIn0.{claims}.{nanos:x}{:x}", std::process::id());
    assert!(token.len() <= 72, "{token}");
    token
}

pub struct Acr {
    /// `kotest.azurecr.io:PORT`: the front, as the client sees it.
    pub host: String,
    /// The CA of the front's certificate, for `SSL_CERT_FILE`.
    pub ca: PathBuf,
    /// `http://127.0.0.1:PORT/`
    pub authority: String,
    pub client_secret: String,
    /// The federated token (client assertion) the authority accepts.
    pub assertion: String,
    pub access_token: String,
    pub refresh_token: String,
    /// The registry behind the front, which takes [`USERNAME`] and the refresh token.
    pub registry: AuthRegistry,
    /// Declared before `dir`, so they stop before their directory is removed.
    _front: Server,
    _authority: Server,
    dir: TempDir,
}

impl Acr {
    pub fn start() -> Acr {
        Acr::start_with_front_tenant(TENANT)
    }

    /// An ACR whose exchange expects tokens of `front_tenant` (another one than the
    /// authority's makes it refuse every exchange).
    pub fn start_with_front_tenant(front_tenant: &str) -> Acr {
        let dir = tempfile::Builder::new().prefix("ko-e2e-acr-").tempdir().unwrap();
        let name = cloud_host(".azurecr.io");
        let refresh_token = refresh_token();
        let registry = AuthRegistry::tls_htpasswd(&name, USERNAME, &refresh_token);
        let (client_secret, access_token) = (made("client-secret"), made("entra-access-token"));
        let assertion = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", made("sa-token"));
        let authority = Server::start(
            dir.path(),
            "azure_authority.py",
            &[
                ("log", dir.path().join("authority.log").to_str().unwrap()),
                ("tenant", TENANT),
                ("client-id", CLIENT_ID),
                ("client-secret", &client_secret),
                ("assertion", &assertion),
                ("access-token", &access_token),
            ],
        );
        let certs = dir.path().join("front");
        std::fs::create_dir(&certs).unwrap();
        let (cert, key, ca) = certificate(&certs, &format!("DNS:{name}"));
        let front = Server::start(
            dir.path(),
            "azure_front.py",
            &[
                ("log", dir.path().join("front.log").to_str().unwrap()),
                ("cert", cert.to_str().unwrap()),
                ("key", key.to_str().unwrap()),
                ("backend", &registry.host),
                ("backend-ca", registry.ca.as_ref().unwrap().to_str().unwrap()),
                ("service", &name),
                ("tenant", front_tenant),
                ("access-token", &access_token),
                ("refresh-token", &refresh_token),
            ],
        );
        Acr {
            host: format!("{name}:{}", front.port),
            ca,
            authority: format!("http://127.0.0.1:{}/", authority.port),
            client_secret,
            assertion,
            access_token,
            refresh_token,
            registry,
            _front: front,
            _authority: authority,
            dir,
        }
    }

    /// A file holding the federated token, as AKS mounts it (with a trailing newline).
    pub fn federated_token_file(&self) -> PathBuf {
        let path = self.dir.path().join("azure-identity-token");
        std::fs::write(&path, format!("{}\n", self.assertion)).unwrap();
        path
    }

    /// Every secret of the test, none of which may be printed.
    pub fn secrets(&self) -> [String; 4] {
        [self.client_secret.clone(), self.assertion.clone(), self.access_token.clone(), self.refresh_token.clone()]
    }

    /// `kubectl-ko-build . -v` of the hello fixture to a new repository of this registry, with
    /// the test CA, the authority and the client id and tenant (no client secret or token
    /// file: each test adds its own), and an empty HOME.
    pub fn build(&self, name: &str) -> KoCmd {
        ko(&["build", ".", "-v"])
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", format!("{}/{}", self.host, unique_name(name)))
            .env("SSL_CERT_FILE", &self.ca)
            .env("AZURE_AUTHORITY_HOST", &self.authority)
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_TENANT_ID", TENANT)
    }

    /// A Docker config whose `auths` hold the right credentials for the front's host.
    pub fn auths_json(&self) -> String {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{}", self.refresh_token));
        serde_json::json!({"auths": {self.host.clone(): {"auth": auth}}}).to_string()
    }

    /// `docker-credential-ko get` for the front's host, configured as [`Acr::build`] is.
    pub fn credential_helper_get(&self, client_secret: &str) -> Run {
        KoCmd::new("docker-credential-ko")
            .arg("get")
            .stdin(format!("{}\n", self.host))
            .env("SSL_CERT_FILE", &self.ca)
            .env("AZURE_AUTHORITY_HOST", &self.authority)
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_SECRET", client_secret)
            .run()
    }

    /// The front's log lines about the token exchange (`exchange ok`, `exchange refused: ...`).
    pub fn exchanges(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("front.log")).unwrap_or_default();
        log.lines().filter(|l| l.starts_with("exchange")).map(str::to_string).collect()
    }

    /// The authority's log: one object per token request (`ok`, `what`).
    pub fn token_requests(&self) -> Vec<Value> {
        let log = std::fs::read_to_string(self.dir.path().join("authority.log")).unwrap_or_default();
        log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// skopeo (not ours) reads the pushed image from the registry behind the front, with the
    /// refresh token.
    #[track_caller]
    pub fn assert_pushed(&self, reference: &str) {
        let behind = reference.replacen(&self.host, &self.registry.host, 1);
        assert_ne!(behind, reference, "{reference} is not in {}", self.host);
        let creds = format!("{USERNAME}:{}", self.refresh_token);
        let name = format!("docker://{behind}");
        let run = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &name]);
        run.assert_success();
        let manifest: Value = serde_json::from_str(&run.stdout).unwrap();
        assert!(manifest["layers"].as_array().is_some_and(|l| !l.is_empty()), "{manifest}");
    }
}
