//! Amazon ECR end to end: moto (the AWS mock, tests/cloud/aws_moto.py) answers
//! `GetAuthorizationToken` and STS (the container and instance metadata endpoints are
//! tests/cloud/aws_metadata.py) through `AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL_STS`, in
//! front of a real TLS registry with basic auth under an ECR host name that /etc/hosts maps
//! to 127.0.0.1, whose password is the one moto hands out. Builds run with no Docker config
//! at all; moto with IAM enforced checks the SigV4 signatures for real.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::registries::AuthRegistry;
use crate::util::*;

/// What moto's `GetAuthorizationToken` returns for account 123456789012: `AWS:<this>`.
const PASSWORD: &str = "123456789012-auth-token";
const ROLE: &str = "arn:aws:iam::123456789012:role/kubectl-ko";

/// A harness script from tests/cloud/ run with the cloud venv's Python: its first stdout line
/// (JSON with the port) is read at start; it is killed on drop.
struct Harness {
    child: Child,
    ready: Value,
    dir: TempDir,
}

impl Harness {
    fn start(script: &str, args: &[&str]) -> Harness {
        let dir = tempfile::Builder::new().prefix("ko-e2e-aws-").tempdir().unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut child = Command::new(cloud_venv().join("bin/python"))
            .arg(workspace().join("tests/cloud").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script} with the cloud venv's python: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ready = serde_json::from_str(&line).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
            panic!("{script} did not start ({e}): {line}\n{log}")
        });
        Harness { child, ready, dir }
    }

    /// moto; with `iam`, enforcing IAM with the access key of a user it made (`key()`).
    fn moto(iam: bool) -> Harness {
        Harness::start("aws_moto.py", if iam { &["--iam"] } else { &[] })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ready["port"])
    }

    /// The IAM user's access key id and secret (moto with `iam`).
    fn key(&self) -> (String, String) {
        let field =
            |name: &str| self.ready[name].as_str().unwrap_or_else(|| panic!("no {name}: {}", self.ready)).to_string();
        (field("access_key_id"), field("secret_access_key"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ECR-named TLS registry that accepts exactly `AWS` and [`PASSWORD`].
fn ecr_registry() -> AuthRegistry {
    AuthRegistry::tls_htpasswd(&cloud_host(".amazonaws.com"), "AWS", PASSWORD)
}

/// `kubectl-ko-build . -v` of the hello fixture into `registry`, trusting its CA, with no
/// AWS setting of the developer's, IMDS off, and ECR's API at `ecr_endpoint`.
fn ecr_build(registry: &AuthRegistry, name: &str, ecr_endpoint: &str) -> KoCmd {
    ko(&["build", ".", "-v"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", registry.repo(name))
        .env("SSL_CERT_FILE", registry.ca.as_ref().unwrap())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_ECR", ecr_endpoint)
}

/// The one reference a successful build printed, checked with skopeo (not ours) and ECR's
/// credentials; and no secret in the output.
#[track_caller]
fn assert_pushed(run: &Run, secrets: &[&str]) {
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    let name = format!("docker://{}", lines[0]);
    let creds = format!("AWS:{PASSWORD}");
    let inspect = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &name]);
    inspect.assert_success();
    let manifest: Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert!(manifest["layers"].as_array().is_some_and(|l| !l.is_empty()), "{manifest}");
    assert_hidden(run, secrets);
}

#[track_caller]
fn assert_hidden(run: &Run, secrets: &[&str]) {
    for secret in secrets.iter().chain([&PASSWORD]) {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "a secret was printed:\n{run}");
    }
}

#[test]
fn access_keys_push_with_no_docker_config_and_a_signature_moto_checks() {
    let moto = Harness::moto(true);
    let (id, secret) = moto.key();
    let registry = ecr_registry();
    let run = ecr_build(&registry, "keys", &moto.url())
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .run();
    assert_pushed(&run, &[&secret]);
    assert!(run.stderr.contains("ECR (AWS_ACCESS_KEY_ID)"), "-v names the source:\n{run}");

    let wrong = "not-the-secret-key-4711";
    let run = ecr_build(&registry, "wrong", &moto.url())
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", wrong)
        .run();
    run.assert_failure();
    let refused = "ECR: GetAuthorizationToken in us-east-1 was denied: SignatureDoesNotMatch";
    assert!(run.stderr.contains(refused), "{run}");
    assert_hidden(&run, &[wrong, &secret]);
}

#[test]
fn web_identity_through_sts() {
    let moto = Harness::moto(false);
    let registry = ecr_registry();
    let token = moto.dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.web-identity-4711.sig\n").unwrap();
    let build = |name: &str, token: &PathBuf| {
        ecr_build(&registry, name, &moto.url())
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", token)
            .env("AWS_ROLE_ARN", ROLE)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_STS", moto.url())
    };
    let run = build("web-identity", &token).run();
    assert_pushed(&run, &["web-identity-4711"]);
    let source = format!("ECR (AWS_WEB_IDENTITY_TOKEN_FILE, role {ROLE})");
    assert!(run.stderr.contains(&source), "-v names the source:\n{run}");

    let missing = moto.dir.path().join("no-such-token");
    let run = build("no-token", &missing).run();
    run.assert_failure();
    let named = format!(
        "ECR: AssumeRoleWithWebIdentity for {ROLE} failed: reading the web identity token file {}",
        missing.display()
    );
    assert!(run.stderr.contains(&named), "{run}");
}

#[test]
fn the_container_credentials_endpoint_with_its_authorization_token() {
    let moto = Harness::moto(true);
    let (id, secret) = moto.key();
    let token = "container-authorization-4711";
    let container = Harness::start("aws_metadata.py", &["container", token, &id, &secret]);
    let token_file = container.dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let registry = ecr_registry();
    let run = ecr_build(&registry, "container", &moto.url())
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/v1/credentials", container.url()))
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)
        .run();
    assert_pushed(&run, &[&secret, token]);
    assert!(run.stderr.contains("ECR (container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI))"), "{run}");
    assert_eq!(container.log().lines().collect::<Vec<_>>(), ["GET /v1/credentials True"]);
}

#[test]
fn a_docker_config_entry_for_the_host_wins() {
    let registry = ecr_registry();
    // ECR's API is a closed port: reaching it would fail the build.
    let cmd = ecr_build(&registry, "docker-config", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "unused-secret-4711");
    let dir = cmd.home().join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), registry.auths_json("AWS", PASSWORD)).unwrap();
    let run = cmd.run();
    assert_pushed(&run, &["unused-secret-4711"]);
    assert!(run.stderr.contains(&format!("auths[{}]", registry.host)), "{run}");
    assert!(!run.stderr.contains("ECR"), "{run}");
}

#[test]
fn an_unreachable_ecr_api_names_ecr_and_the_endpoint() {
    let registry = ecr_registry();
    let run = ecr_build(&registry, "refused", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "unused-secret-4711")
        .run();
    run.assert_failure();
    let named = "ECR: GetAuthorizationToken in us-east-1 failed: cannot reach http://127.0.0.1:1";
    assert!(run.stderr.contains(named), "{run}");
    assert_hidden(&run, &["unused-secret-4711"]);
}

/// `docker-credential-ko get HOST` with no AWS setting of the developer's and IMDS off
/// unless the test turns it on.
fn credential_helper_get(host: &str) -> KoCmd {
    KoCmd::new("docker-credential-ko").arg("get").stdin(format!("{host}\n"))
}

#[track_caller]
fn assert_ecr_answer(run: &Run, secret: &str) {
    run.assert_success();
    let answer: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}:\n{run}"));
    assert_eq!(answer["Username"], "AWS", "{run}");
    assert_eq!(answer["Secret"], PASSWORD, "{run}");
    assert!(!run.stderr.contains(secret), "{run}");
}

#[test]
fn instance_metadata_v2_when_its_endpoint_is_set() {
    let moto = Harness::moto(true);
    let (id, secret) = moto.key();
    let imds = Harness::start("aws_metadata.py", &["imds", &id, &secret]);
    let run = credential_helper_get(&cloud_host(".amazonaws.com"))
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
        .env("AWS_ENDPOINT_URL_ECR", moto.url())
        .run();
    assert_ecr_answer(&run, &secret);
    let roles = "/latest/meta-data/iam/security-credentials/";
    let expected = [
        "PUT /latest/api/token True".to_string(),
        format!("GET {roles} True"),
        format!("GET {roles}kubectl-ko-role True"),
    ];
    assert_eq!(imds.log().lines().collect::<Vec<_>>(), expected);
}

#[test]
fn docker_credential_ko_answers_for_ecr_from_a_profile() {
    let moto = Harness::moto(true);
    let (id, secret) = moto.key();
    let cmd = credential_helper_get(&format!("{}:5000", cloud_host(".amazonaws.com")));
    let aws = cmd.home().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    let profile = format!("[ci]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    std::fs::write(aws.join("credentials"), profile).unwrap();
    let run =
        cmd.env("AWS_PROFILE", "ci").env("AWS_ENDPOINT_URL", moto.url()).env("AWS_EC2_METADATA_DISABLED", "true").run();
    assert_ecr_answer(&run, &secret);
}
