//! Registries that need credentials or TLS, each started for one test as a [`LocalRegistry`]
//! (Debian's docker-registry on a port it binds itself) in its own directory and stopped when
//! dropped: htpasswd basic auth, self-signed TLS, and bearer tokens from [`TokenServer`].

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::token_server::{ISSUER, SERVICE, TokenServer};
use crate::util::*;

pub const USER: &str = "alice";

pub struct AuthRegistry {
    /// Declared before `_dir`, so the registry stops before its directory is removed.
    _registry: LocalRegistry,
    _dir: TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
    /// A password made for this registry, so a test can look for it in any output.
    pub password: String,
    /// The CA certificate (PEM) that signed the registry's certificate, for TLS registries.
    pub ca: Option<PathBuf>,
    pub tokens: Option<TokenServer>,
}

fn openssl(dir: &Path, args: &[&str]) {
    KoCmd::program(tool("openssl")).args(args).cwd(dir).run().assert_success();
}

/// A CA made for the test and a server certificate it signed for `san` (`IP:127.0.0.1`,
/// `DNS:r.example`), in `d`: `(server.pem, server.key, ca.pem)`.
pub fn certificate(d: &Path, san: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kubectl-ko test CA"]);
    openssl(d, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kubectl-ko test server"]);
    openssl(d, &csr);
    let ext = format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
    std::fs::write(d.join("ext.cnf"), ext).unwrap();
    let sign = ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
    let mut args = sign.to_vec();
    args.extend(["-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]);
    openssl(d, &args);
    (d.join("server.pem"), d.join("server.key"), d.join("ca.pem"))
}

fn secret(label: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}-{}-{nanos:x}", std::process::id())
}

impl AuthRegistry {
    /// Basic auth against an htpasswd file (bcrypt, made by `htpasswd -B`).
    pub fn htpasswd() -> AuthRegistry {
        let dir = tempfile::Builder::new().prefix("ko-e2e-auth-").tempdir().unwrap();
        let password = secret("pw");
        let run = KoCmd::program(tool("htpasswd")).args(["-Bbn", USER, &password]).run();
        run.assert_success();
        std::fs::write(dir.path().join("htpasswd"), run.stdout.trim()).unwrap();
        let htpasswd = dir.path().join("htpasswd");
        Self::start(dir, password, None, None, &["--htpasswd", htpasswd.to_str().unwrap()])
    }

    /// HTTPS with a certificate for 127.0.0.1 signed by a CA made for the test; no auth.
    pub fn tls() -> AuthRegistry {
        let dir = tempfile::Builder::new().prefix("ko-e2e-tls-").tempdir().unwrap();
        let (cert, key, ca) = certificate(dir.path(), "IP:127.0.0.1");
        Self::start(dir, String::new(), Some(ca), None, &["--tls", cert.to_str().unwrap(), key.to_str().unwrap()])
    }

    /// HTTPS with a self-signed certificate made as Docker's registry guide makes one
    /// (`openssl req -x509` with the SAN; OpenSSL 3 marks it `CA:TRUE`). `ca` is the
    /// certificate itself, which is what the user trusts.
    pub fn self_signed() -> AuthRegistry {
        let dir = tempfile::Builder::new().prefix("ko-e2e-selfsigned-").tempdir().unwrap();
        let args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.pem"];
        let mut args = args.to_vec();
        args.extend(["-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]);
        openssl(dir.path(), &args);
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        let options = ["--tls", cert.to_str().unwrap(), key.to_str().unwrap()];
        Self::start(dir, String::new(), Some(cert.clone()), None, &options)
    }

    /// HTTPS under a host name (which /etc/hosts must map to 127.0.0.1: scripts/test.sh adds
    /// the cloud registry names), with basic auth for exactly `user` and `password`. The
    /// cloud tests use it as ECR, Artifact Registry or ACR: the credentials are the ones their
    /// token services hand out. `host` is `name:PORT`.
    pub fn tls_htpasswd(name: &str, user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::Builder::new().prefix("ko-e2e-cloud-").tempdir().unwrap();
        let (cert, key, ca) = certificate(dir.path(), &format!("DNS:{name}"));
        let run = KoCmd::program(tool("htpasswd")).args(["-Bbn", user, password]).run();
        run.assert_success();
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, run.stdout.trim()).unwrap();
        let options =
            ["--tls", cert.to_str().unwrap(), key.to_str().unwrap(), "--htpasswd", htpasswd.to_str().unwrap()];
        let mut registry = Self::start(dir, password.to_string(), Some(ca), None, &options);
        let port = registry.host.rsplit_once(':').map(|(_, port)| port.to_string()).unwrap();
        registry.host = format!("{name}:{port}");
        registry
    }

    /// Bearer tokens from a [`TokenServer`] that knows [`USER`], the password and a refresh
    /// token (the `identitytoken` of Docker's config), which is returned as the second value.
    pub fn token() -> (AuthRegistry, String) {
        let dir = tempfile::Builder::new().prefix("ko-e2e-token-").tempdir().unwrap();
        let password = secret("pw");
        let refresh = secret("refresh");
        let tokens = TokenServer::start(dir.path(), USER, &password, &refresh);
        let bundle = dir.path().join("token.crt");
        let realm = tokens.realm.clone();
        let args = ["--token", &realm, SERVICE, ISSUER, bundle.to_str().unwrap()];
        (Self::start(dir, password, None, Some(tokens), &args), refresh)
    }

    fn start(
        dir: TempDir,
        password: String,
        ca: Option<PathBuf>,
        tokens: Option<TokenServer>,
        options: &[&str],
    ) -> Self {
        let registry = LocalRegistry::start(&dir.path().join("registry"), options);
        let host = registry.host.clone();
        AuthRegistry { _registry: registry, _dir: dir, host, password, ca, tokens }
    }

    /// A repository in this registry no other test uses.
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{}", self.host, unique_name(name))
    }

    /// `user:password` for skopeo's `--creds`.
    pub fn creds(&self) -> String {
        format!("{USER}:{}", self.password)
    }

    /// A Docker `config.json` `auths` entry for this registry with these credentials.
    pub fn auths_json(&self, user: &str, password: &str) -> String {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        serde_json::json!({"auths": {self.host.clone(): {"auth": auth}}}).to_string()
    }
}

/// A self-signed registry certificate that the user trusts (`--registry-ca-file`,
/// `SSL_CERT_FILE`) is accepted even when it is marked as a CA, as ko (Go) accepts it; one
/// not trusted is still refused.
#[test]
fn a_trusted_self_signed_certificate_marked_as_a_ca_is_accepted() {
    let registry = AuthRegistry::self_signed();
    let cert = registry.ca.clone().unwrap();
    let text = KoCmd::program(tool("openssl")).args(["x509", "-noout", "-text", "-in"]).arg(&cert).run();
    assert!(text.stdout.contains("CA:TRUE"), "the certificate is made as the guide makes it: {text}");
    let build = |repo: &str| ko(&["build", ".", "--sbom=none"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", repo);
    build(&registry.repo("untrusted")).run().assert_failure();
    build(&registry.repo("ca-flag")).arg("--registry-ca-file").arg(&cert).run().assert_success();
    let run = build(&registry.repo("ssl-cert-file")).env("SSL_CERT_FILE", &cert).run();
    run.assert_success();
    let pushed = run.stdout.trim();
    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{pushed}")]);
    assert!(inspect.success(), "{inspect}");
}
