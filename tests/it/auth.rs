//! Registry authentication end to end, against real registries started for each test
//! (htpasswd basic auth, self-signed TLS, bearer tokens): every credential source and no
//! secret in any output. Logging in is in `login.rs`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::registries::{AuthRegistry, USER};
use crate::util::*;

/// `kubectl-ko-build . -v` of the hello fixture, pushing to `repo`.
pub(crate) fn hello_build(repo: &str) -> KoCmd {
    ko(&["build", ".", "-v"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", repo)
}

/// Writes `~/.docker/config.json` in the command's HOME.
fn write_docker_config(cmd: &KoCmd, json: &str) -> PathBuf {
    let dir = cmd.home().join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, json).unwrap();
    path
}

#[track_caller]
pub(crate) fn assert_hidden(run: &Run, secret: &str) {
    assert!(!secret.is_empty());
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "the secret was printed:\n{run}");
}

/// The one reference a successful build printed.
#[track_caller]
pub(crate) fn reference(run: &Run) -> String {
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    lines[0].to_string()
}

/// skopeo (not ours) can read the pushed image with the registry's credentials.
#[track_caller]
pub(crate) fn assert_pushed(registry: &AuthRegistry, reference: &str) {
    let name = format!("docker://{reference}");
    let run = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &registry.creds(), &name]);
    run.assert_success();
    let manifest: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(manifest["layers"].as_array().is_some_and(|l| !l.is_empty()), "{manifest}");
}

/// A credential helper script `docker-credential-<suffix>` in `dir`, answering `get` for
/// `host` with the given password and logging each call to `dir/calls`.
fn helper_script(dir: &Path, suffix: &str, host: &str, password: &str) {
    let script = format!(
        r#"#!/bin/sh
read server
echo "$1 $server" >> "{calls}"
if [ "$1" = get ] && [ "$server" = "{host}" ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{password}"}}\n' "$server"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
"#,
        calls = dir.join("calls").display()
    );
    write_executable(&dir.join(format!("docker-credential-{suffix}")), &script);
}

/// `dir` in front of the test's PATH.
pub(crate) fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn basic_auth_from_config_json_auths() {
    let registry = AuthRegistry::htpasswd();
    let cmd = hello_build(&registry.repo("auths"));
    let config = write_docker_config(&cmd, &registry.auths_json(USER, &registry.password));
    let run = cmd.run();
    let pushed = reference(&run);
    assert_pushed(&registry, &pushed);
    let source = format!("auths[{}] in {}", registry.host, config.display());
    assert!(run.stderr.contains(&source), "-v names the source:\n{run}");
    assert_hidden(&run, &registry.password);
}

#[test]
fn missing_or_refused_credentials_name_the_registry_and_source() {
    let registry = AuthRegistry::htpasswd();
    let run = hello_build(&registry.repo("anonymous")).run();
    run.assert_failure();
    assert!(run.stderr.contains(&registry.host), "{run}");
    assert!(run.stderr.contains(&format!("kubectl ko login {}", registry.host)), "{run}");

    let cmd = hello_build(&registry.repo("wrong"));
    let wrong = "not-the-password-4711";
    let config = write_docker_config(&cmd, &registry.auths_json(USER, wrong));
    let run = cmd.run();
    run.assert_failure();
    let source = format!("refused the credentials from auths[{}] in {}", registry.host, config.display());
    assert!(run.stderr.contains(&source), "{run}");
    assert!(run.stderr.contains(&format!("log in again with `kubectl ko login {}`", registry.host)), "{run}");
    assert_hidden(&run, wrong);
}

#[test]
fn cred_helpers_and_creds_store_run_the_helper() {
    let registry = AuthRegistry::htpasswd();
    let helpers = tempfile::tempdir().unwrap();
    helper_script(helpers.path(), "kotest", &registry.host, &registry.password);

    for config in [
        format!(
            r#"{{"credHelpers":{{"{}":"kotest"}},"auths":{{"{}":{{"auth":"d3Jvbmc6d3Jvbmc="}}}}}}"#,
            registry.host, registry.host
        ),
        r#"{"credsStore":"kotest"}"#.to_string(),
    ] {
        let cmd = hello_build(&registry.repo("helper")).env("PATH", path_with(helpers.path()));
        let path = write_docker_config(&cmd, &config);
        let run = cmd.run();
        let pushed = reference(&run);
        assert_pushed(&registry, &pushed);
        let source = if config.contains("credsStore") {
            format!("credsStore = docker-credential-kotest in {}", path.display())
        } else {
            format!("credHelpers[{}] = docker-credential-kotest in {}", registry.host, path.display())
        };
        assert!(run.stderr.contains(&source), "{run}");
        assert_hidden(&run, &registry.password);
    }
    let calls = std::fs::read_to_string(helpers.path().join("calls")).unwrap();
    assert_eq!(calls.lines().filter(|l| *l == format!("get {}", registry.host)).count(), 2, "{calls}");
}

#[test]
fn broken_helpers_and_configs_are_named() {
    let registry = AuthRegistry::htpasswd();
    let cmd = hello_build(&registry.repo("missing"));
    write_docker_config(&cmd, &format!(r#"{{"credHelpers":{{"{}":"absent-x"}}}}"#, registry.host));
    let run = cmd.run();
    run.assert_failure();
    assert!(run.stderr.contains("docker-credential-absent-x is not installed"), "{run}");
    assert!(run.stderr.contains(&format!("credHelpers[{}]", registry.host)), "{run}");

    let helpers = tempfile::tempdir().unwrap();
    write_executable(
        &helpers.path().join("docker-credential-sealed"),
        "#!/bin/sh\necho 'the vault is sealed'\nexit 1\n",
    );
    let cmd = hello_build(&registry.repo("failing")).env("PATH", path_with(helpers.path()));
    write_docker_config(&cmd, &format!(r#"{{"credHelpers":{{"{}":"sealed"}}}}"#, registry.host));
    let run = cmd.run();
    run.assert_failure();
    assert!(run.stderr.contains("docker-credential-sealed get") && run.stderr.contains("the vault is sealed"), "{run}");

    let cmd = hello_build(&registry.repo("malformed"));
    let path = write_docker_config(&cmd, "{\"auths\": oops");
    let run = cmd.run();
    run.assert_failure();
    assert!(run.stderr.contains(path.to_str().unwrap()), "{run}");
}

#[test]
fn docker_auth_config_and_podman_auth_files() {
    let registry = AuthRegistry::htpasswd();
    let json = registry.auths_json(USER, &registry.password);
    let run = hello_build(&registry.repo("env")).env("DOCKER_AUTH_CONFIG", &json).run();
    assert_pushed(&registry, &reference(&run));
    assert!(run.stderr.contains(&format!("auths[{}] in DOCKER_AUTH_CONFIG", registry.host)), "{run}");
    assert_hidden(&run, &registry.password);

    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, &json).unwrap();
    let run = hello_build(&registry.repo("podman")).env("REGISTRY_AUTH_FILE", &auth_file).run();
    assert_pushed(&registry, &reference(&run));
    assert!(run.stderr.contains(auth_file.to_str().unwrap()), "{run}");

    // A broken podman file found on its own is skipped with a warning (the push needs
    // nothing from it); one REGISTRY_AUTH_FILE names is an error.
    let runtime = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(runtime.path().join("containers")).unwrap();
    let broken = runtime.path().join("containers/auth.json");
    std::fs::write(&broken, "not json").unwrap();
    let run = hello_build(&registry.repo("skipped"))
        .env("DOCKER_AUTH_CONFIG", &json)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .run();
    assert_pushed(&registry, &reference(&run));
    assert!(run.stderr.contains(&format!("warning: reading {}", broken.display())), "{run}");
    let run = hello_build(&registry.repo("named")).env("REGISTRY_AUTH_FILE", &broken).run();
    crate::build_errors::assert_clear_error(&run, &[broken.to_str().unwrap()]);
}

#[test]
fn self_signed_tls_needs_the_ca_or_insecure_registry() {
    let registry = AuthRegistry::tls();
    let ca = registry.ca.clone().unwrap();
    let run = hello_build(&registry.repo("untrusted")).run();
    run.assert_failure();
    assert!(run.stderr.contains("--registry-ca-file"), "{run}");

    let run = hello_build(&registry.repo("ca-flag")).arg("--registry-ca-file").arg(&ca).run();
    let base = reference(&run);
    assert!(skopeo_inspect(&base, true)["layers"].is_array());
    let run = hello_build(&registry.repo("ssl-cert-file")).env("SSL_CERT_FILE", &ca).run();
    reference(&run);
    let run = hello_build(&registry.repo("insecure")).arg("--insecure-registry").run();
    reference(&run);

    // Base images are pulled through the same TLS settings.
    let run = hello_build(&registry.repo("on-base")).env("KO_DEFAULTBASEIMAGE", &base).run();
    run.assert_failure();
    assert!(run.stderr.contains("--registry-ca-file"), "{run}");
    for flag in [format!("--registry-ca-file={}", ca.display()), "--insecure-registry".to_string()] {
        let run = hello_build(&registry.repo("on-base")).arg(&flag).env("KO_DEFAULTBASEIMAGE", &base).run();
        let pushed = reference(&run);
        let manifest = skopeo_inspect(&pushed, true);
        assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], base.as_str(), "{manifest}");
    }

    // login goes through the same TLS settings; like ko, which never asks the registry, it
    // stores what it could not check, and says why and what to do.
    let home = tempfile::tempdir().unwrap();
    let login = |extra: &[&str]| {
        KoCmd::new("kubectl-ko-login")
            .args([registry.host.as_str(), "-u", USER, "-p", "pw"])
            .args(extra)
            .env("HOME", home.path())
            .run()
    };
    let run = login(&[]);
    run.assert_success();
    assert!(run.stderr.contains("could not be checked") && run.stderr.contains("--registry-ca-file"), "{run}");
    let run = login(&["--registry-ca-file", ca.to_str().unwrap()]);
    run.assert_success();
    assert!(run.stderr.contains("asks for no credentials"), "{run}");

    let bad = tempfile::tempdir().unwrap();
    let bad_ca = bad.path().join("not-a-ca.pem");
    std::fs::write(&bad_ca, "hello").unwrap();
    let run = hello_build(&registry.repo("bad-ca")).arg("--registry-ca-file").arg(&bad_ca).run();
    run.assert_failure();
    assert!(run.stderr.contains(bad_ca.to_str().unwrap()), "{run}");
}

#[test]
fn bearer_tokens_from_the_token_service() {
    let (registry, refresh_token) = AuthRegistry::token();
    let tokens = registry.tokens.as_ref().unwrap();

    // Basic credentials go to the realm; the first push token has expired by the time it
    // is used, so the client fetches one more, and reuses it for every other request.
    tokens.expire_next_push_token();
    let repo = registry.repo("token");
    let cmd = hello_build(&repo);
    write_docker_config(&cmd, &registry.auths_json(USER, &registry.password));
    let run = cmd.run();
    let pushed = reference(&run);
    assert!(run.stderr.contains("token refused, fetching a new one"), "{run}");
    assert_hidden(&run, &registry.password);
    let path = pushed.split_once('/').unwrap().1.split('@').next().unwrap();
    let push_scope = format!("repository:{path}:pull,push");
    let requests = tokens.requests();
    let for_push: Vec<_> = requests.iter().filter(|r| r.scopes == [push_scope.clone()]).collect();
    assert_eq!(for_push.len(), 2, "one expired token, one renewed and reused: {requests:?}");
    assert!(for_push.iter().all(|r| r.user.as_deref() == Some(USER) && !r.refresh_grant), "{requests:?}");
    // The SBOM's referrers fallback index is read with the push token too.
    let pull_only = format!("repository:{path}:pull");
    assert!(!requests.iter().any(|r| r.scopes == [pull_only.clone()]), "no pull token for {path}: {requests:?}");

    // An identity token goes through the refresh-token grant; a base in the same registry
    // is mounted, which needs pull on its repository in the same token.
    let cmd = hello_build(&registry.repo("identity")).env("KO_DEFAULTBASEIMAGE", &pushed);
    write_docker_config(&cmd, &format!(r#"{{"auths":{{"{}":{{"identitytoken":"{refresh_token}"}}}}}}"#, registry.host));
    let run = cmd.run();
    let on_base = reference(&run);
    assert_hidden(&run, &refresh_token);
    let requests = tokens.requests();
    assert!(
        requests.iter().any(|r| r.refresh_grant && r.method == "POST" && r.user.as_deref() == Some(USER)),
        "{requests:?}"
    );
    let mount_source = format!("repository:{path}:pull");
    assert!(
        requests.iter().any(|r| r.refresh_grant && r.scopes.contains(&mount_source) && r.scopes.len() == 2),
        "a mount asks for pull on its source: {requests:?}"
    );
    assert!(on_base.starts_with(&registry.host));

    // Wrong password: the token service says 401, and the error names the source.
    let cmd = hello_build(&registry.repo("wrong"));
    let config = write_docker_config(&cmd, &registry.auths_json(USER, "nope-nope"));
    let run = cmd.run();
    run.assert_failure();
    assert!(run.stderr.contains("unauthorized"), "{run}");
    assert!(run.stderr.contains(&format!("auths[{}] in {}", registry.host, config.display())), "{run}");

    // login checks against the token service too.
    let home = tempfile::tempdir().unwrap();
    let login = |password: &str| {
        KoCmd::new("kubectl-ko-login")
            .args([registry.host.as_str(), "-u", USER, "-p", password])
            .env("HOME", home.path())
            .run()
    };
    let run = login("nope-nope");
    run.assert_failure();
    assert!(run.stderr.contains("unauthorized"), "{run}");
    let run = login(&registry.password);
    run.assert_success();
    assert_eq!(run.stdout, "", "login prints nothing on stdout");

    // A registry token (`registrytoken`, as Docker's and ko's clients read it) is sent as it
    // is: no token service is asked.
    let repo = registry.repo("regtoken");
    let name = repo.split_once('/').unwrap().1;
    let challenge = KoCmd::program(tool("curl")).args(["-si", &format!("http://{}/v2/", registry.host)]).run();
    let service = challenge.stdout.split("service=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let url = format!("{}?service={service}&scope=repository:{name}:pull,push", tokens.realm);
    let issued = KoCmd::program(tool("curl")).args(["-sf", "-u", &format!("{USER}:{}", registry.password), &url]).run();
    let token: Value = serde_json::from_str(issued.assert_success().stdout.trim()).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let before = tokens.requests().len();
    let cmd = hello_build(&repo).args(["--sbom=none", "--bare"]);
    write_docker_config(&cmd, &format!(r#"{{"auths":{{"{}":{{"registrytoken":"{token}"}}}}}}"#, registry.host));
    let run = cmd.run();
    assert_eq!(tokens.requests().len(), before, "no token was asked for: {:?}", &tokens.requests()[before - 1..]);
    assert_pushed(&registry, &reference(&run));
}
