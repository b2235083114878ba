//! Registry authentication end to end, against real registries started for each test
//! (htpasswd basic auth, self-signed TLS, bearer tokens): every credential source, the
//! docker-credential-ko protocol, login and logout, and no secret in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::registries::{AuthRegistry, USER};
use crate::util::*;

/// `kubectl-ko-build . -v` of the hello fixture, pushing to `repo`.
fn hello_build(repo: &str) -> KoCmd {
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
fn assert_hidden(run: &Run, secret: &str) {
    assert!(!secret.is_empty());
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "the secret was printed:\n{run}");
}

/// The one reference a successful build printed.
#[track_caller]
pub fn reference(run: &Run) -> String {
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    lines[0].to_string()
}

/// skopeo (not ours) can read the pushed image with the registry's credentials.
#[track_caller]
fn assert_pushed(registry: &AuthRegistry, reference: &str) {
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
fn path_with(dir: &Path) -> String {
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

fn credential_helper(home: &Path, action: &str, input: &str) -> Run {
    KoCmd::new("docker-credential-ko").arg(action).stdin(input).env("HOME", home).run()
}

#[test]
fn docker_credential_ko_speaks_the_helper_protocol() {
    let home = tempfile::tempdir().unwrap();
    let run = credential_helper(home.path(), "get", "r.example:5000\n");
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.stdout.trim(), "credentials not found in native keychain");

    let input = r#"{"ServerURL":"r.example:5000","Username":"alice","Secret":"pa55"}"#;
    credential_helper(home.path(), "store", input).assert_success();
    let store = home.path().join(".config/kubectl-ko/credentials.json");
    assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o600);

    let run = credential_helper(home.path(), "get", "r.example:5000");
    run.assert_success();
    let got: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("alice"), Some("pa55")), "{run}");
    let run = credential_helper(home.path(), "list", "");
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap(), serde_json::json!({"r.example:5000": "alice"}));
    assert!(credential_helper(home.path(), "version", "").stdout.contains(env!("CARGO_PKG_VERSION")));
    credential_helper(home.path(), "erase", "r.example:5000").assert_success();
    assert_eq!(credential_helper(home.path(), "get", "r.example:5000").code(), Some(1));

    // `get` falls back to the environment, so Docker can use GITHUB_TOKEN through it.
    let run = KoCmd::new("docker-credential-ko")
        .arg("get")
        .stdin("ghcr.io")
        .env("HOME", home.path())
        .env("GITHUB_TOKEN", "ghp_test")
        .env("GITHUB_ACTOR", "octocat")
        .run();
    run.assert_success();
    let got: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("octocat"), Some("ghp_test")), "{run}");

    // Docker's web login stores Docker Hub's tokens beside the login: each is its own entry.
    for suffix in ["", "refresh-token", "access-token"] {
        let input = format!(
            r#"{{"ServerURL":"https://index.docker.io/v1/{suffix}","Username":"alice","Secret":"S-{suffix}"}}"#
        );
        credential_helper(home.path(), "store", &input).assert_success();
    }
    let secret_of = |server: &str| {
        let run = credential_helper(home.path(), "get", server);
        serde_json::from_str::<Value>(&run.stdout).ok().map(|v| v["Secret"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(secret_of("https://index.docker.io/v1/").as_deref(), Some("S-"));
    assert_eq!(secret_of("https://index.docker.io/v1/access-token").as_deref(), Some("S-access-token"));
    credential_helper(home.path(), "erase", "https://index.docker.io/v1/access-token").assert_success();
    assert_eq!(secret_of("https://index.docker.io/v1/").as_deref(), Some("S-"), "erasing a token keeps the login");
}

/// A PATH with `dir` first and no directory that already holds docker-credential-ko.
fn isolated_path(dir: &Path) -> String {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let kept = std::env::split_paths(&rest).filter(|d| !d.join("docker-credential-ko").exists());
    std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(kept)).unwrap().to_string_lossy().into_owned()
}

#[test]
fn login_build_logout() {
    let registry = AuthRegistry::htpasswd();
    let home = tempfile::tempdir().unwrap();
    // krew's layout: only kubectl-ko is linked into a directory on PATH.
    let krew_bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin("kubectl-ko"), krew_bin.path().join("kubectl-ko")).unwrap();
    let path = isolated_path(krew_bin.path());
    let kubectl_ko = |args: &[&str]| {
        KoCmd::program(krew_bin.path().join("kubectl-ko")).args(args).env("HOME", home.path()).env("PATH", &path)
    };
    let config = home.path().join(".docker/config.json");
    let store = home.path().join(".config/kubectl-ko/credentials.json");

    let wrong = "wrong-password-1234";
    let run = kubectl_ko(&["login", &registry.host, "-u", USER, "--password-stdin"]).stdin(format!("{wrong}\n")).run();
    run.assert_failure();
    assert!(run.stderr.contains("unauthorized") && run.stderr.contains(&registry.host), "{run}");
    assert_hidden(&run, wrong);
    assert!(!store.exists() && !config.exists(), "a refused login stores nothing");

    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"psFormat":"table {{.ID}}","credHelpers":{"gcr.io":"gcloud"}}"#).unwrap();
    let run = kubectl_ko(&["login", &registry.host, "-u", USER, "--password-stdin", "-v"])
        .stdin(format!("{}\n", registry.password))
        .run();
    run.assert_success();
    assert_hidden(&run, &registry.password);
    let link = krew_bin.path().join("docker-credential-ko");
    assert!(link.exists() && run.stderr.contains(link.to_str().unwrap()), "login links the helper:\n{run}");
    assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o600);
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(docker["credHelpers"][&registry.host], "ko", "{docker}");
    assert_eq!(docker["credHelpers"]["gcr.io"], "gcloud", "{docker}");
    assert_eq!(docker["psFormat"], "table {{.ID}}", "{docker}");

    let build = |name: &str| {
        kubectl_ko(&["build", ".", "-v"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", registry.repo(name)).run()
    };
    let run = build("after-login");
    assert_pushed(&registry, &reference(&run));
    assert!(run.stderr.contains("docker-credential-ko"), "{run}");
    assert_hidden(&run, &registry.password);

    let run = kubectl_ko(&["logout", &registry.host]).run();
    run.assert_success();
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(docker["credHelpers"].get(&registry.host).is_none(), "{docker}");
    assert_eq!(docker["credHelpers"]["gcr.io"], "gcloud", "{docker}");
    let run = build("after-logout");
    run.assert_failure();
    assert!(run.stderr.contains(&registry.host) && run.stderr.contains("no credentials found"), "{run}");
}

/// A helper `docker-credential-vault` in `dir` that keeps one credential in `dir/kept`.
fn keeping_helper(dir: &Path) {
    let kept = dir.join("kept");
    let script = format!(
        r#"#!/bin/sh
case "$1" in
store) cat > "{kept}" ;;
get) [ -f "{kept}" ] && cat "{kept}" && exit 0; echo "credentials not found in native keychain"; exit 1 ;;
erase) [ -f "{kept}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}; rm "{kept}" ;;
esac
"#,
        kept = kept.display()
    );
    write_executable(&dir.join("docker-credential-vault"), &script);
}

#[test]
fn login_and_logout_use_the_helper_the_config_already_names() {
    let registry = AuthRegistry::htpasswd();
    let home = tempfile::tempdir().unwrap();
    let helpers = tempfile::tempdir().unwrap();
    keeping_helper(helpers.path());
    let path = path_with(helpers.path());
    let kubectl_ko = |args: &[&str]| KoCmd::new("kubectl-ko").args(args).env("HOME", home.path()).env("PATH", &path);
    let config = home.path().join(".docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let before = format!(r#"{{"credHelpers":{{"{}":"vault"}}}}"#, registry.host);
    std::fs::write(&config, &before).unwrap();

    let run = kubectl_ko(&["login", &registry.host, "-u", USER, "--password-stdin"])
        .stdin(format!("{}\n", registry.password))
        .run();
    run.assert_success();
    assert!(run.stderr.contains("docker-credential-vault"), "{run}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before, "the config is left alone");
    assert!(!home.path().join(".config/kubectl-ko/credentials.json").exists(), "{run}");
    let kept: Value = serde_json::from_slice(&std::fs::read(helpers.path().join("kept")).unwrap()).unwrap();
    assert_eq!(kept["Username"], USER);

    let run = kubectl_ko(&["build", ".", "--sbom=none"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", registry.repo("vault"))
        .run();
    assert_pushed(&registry, &reference(&run));

    let run = kubectl_ko(&["logout", &registry.host]).run();
    run.assert_success();
    assert!(!helpers.path().join("kept").exists(), "logout erases through the helper: {run}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before, "{run}");

    // The same with the helper as the credsStore (the desktop's keychain): the password goes
    // there, never into a file of ours, and `auths` lists the server without it.
    std::fs::write(&config, r#"{"credsStore":"vault"}"#).unwrap();
    let run = kubectl_ko(&["login", &registry.host, "-u", USER, "-p", &registry.password]).run();
    run.assert_success();
    assert!(run.stderr.contains("credsStore = \"vault\""), "{run}");
    assert!(!home.path().join(".config/kubectl-ko/credentials.json").exists(), "{run}");
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(docker["auths"][&registry.host], serde_json::json!({}), "{docker}");
    assert!(docker.get("credHelpers").is_none(), "{docker}");
    let run = kubectl_ko(&["build", ".", "--sbom=none"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", registry.repo("vault-store"))
        .run();
    assert_pushed(&registry, &reference(&run));
    let run = kubectl_ko(&["logout", &registry.host]).run();
    run.assert_success();
    assert!(!helpers.path().join("kept").exists(), "logout erases through the credsStore: {run}");
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(docker["auths"].get(&registry.host).is_none(), "{docker}");
}

#[test]
fn login_to_an_unreachable_registry_stores_with_a_warning_and_replaces_an_old_auths_entry() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"auths":{"127.0.0.1:1":{"auth":"b2xkOm9sZA=="}},"psFormat":"x"}"#).unwrap();
    let run = KoCmd::new("kubectl-ko")
        .args(["login", "127.0.0.1:1", "-u", "alice", "-p", "s3cret-login"])
        .env("HOME", home.path())
        .run();
    run.assert_success();
    assert!(run.stderr.contains("could not be checked") && run.stderr.contains("127.0.0.1:1"), "{run}");
    assert_hidden(&run, "s3cret-login");
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(docker["credHelpers"]["127.0.0.1:1"], "ko", "{docker}");
    assert!(docker["auths"].get("127.0.0.1:1").is_none(), "the old password is gone: {docker}");
    assert_eq!(docker["psFormat"], "x");
    let got = credential_helper(home.path(), "get", "127.0.0.1:1");
    got.assert_success();
    assert!(got.stdout.contains("s3cret-login"), "stored: {got}");

    // A config that cannot take the credHelpers entry stores nothing.
    std::fs::write(&config, r#"{"credHelpers":[]}"#).unwrap();
    let run = KoCmd::new("kubectl-ko")
        .args(["login", "127.0.0.1:3", "-u", "alice", "-p", "s3cret-other"])
        .env("HOME", home.path())
        .run();
    crate::build_errors::assert_clear_error(&run, &["credHelpers is not a JSON object"]);
    credential_helper(home.path(), "get", "127.0.0.1:3").assert_failure();
}

#[test]
fn a_password_alone_logs_in_as_in_ko_and_a_username_alone_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let login = |args: &[&str], stdin: &str| {
        KoCmd::new("kubectl-ko").args(["login", "127.0.0.1:1"]).args(args).stdin(stdin).env("HOME", home.path()).run()
    };
    let config = home.path().join(".docker/config.json");
    for (args, fix) in
        [(&["-u", "alice"][..], "give -p or --password-stdin"), (&[][..], "username and password required")]
    {
        let run = login(args, "");
        run.assert_failure();
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: ") && last.contains(fix), "{run}");
        assert!(!config.exists(), "a refused login stores nothing: {run}");
    }
    // A token with no username, as some registries take (ko stores it the same way).
    let run = login(&["--password-stdin"], "t0ken-only\r\n");
    run.assert_success();
    assert_hidden(&run, "t0ken-only");
    let got = credential_helper(home.path(), "get", "127.0.0.1:1");
    got.assert_success();
    let got: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some(""), Some("t0ken-only")));
}

#[test]
fn each_docker_config_keeps_its_own_logins() {
    let home = tempfile::tempdir().unwrap();
    let (a, b) = (home.path().join("config-a"), home.path().join("config-b"));
    let login = |config: &Path, user: &str| {
        let run = KoCmd::new("kubectl-ko")
            .args(["login", "127.0.0.1:1", "-u", user, "-p", &format!("{user}-pw")])
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", config)
            .run();
        run.assert_success();
    };
    let user_in = |config: &Path| {
        let run = KoCmd::new("docker-credential-ko")
            .arg("get")
            .stdin("127.0.0.1:1")
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", config)
            .run();
        serde_json::from_str::<Value>(&run.stdout).ok().map(|v| v["Username"].as_str().unwrap_or_default().to_string())
    };
    login(&a, "alice");
    login(&b, "bob");
    assert_eq!((user_in(&a).as_deref(), user_in(&b).as_deref()), (Some("alice"), Some("bob")));
    assert!(a.join("kubectl-ko/credentials.json").exists() && !home.path().join(".config/kubectl-ko").exists());
    let logout = |config: &Path| {
        KoCmd::new("kubectl-ko")
            .args(["logout", "127.0.0.1:1"])
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", config)
            .run()
    };
    let run = logout(&b);
    run.assert_success();
    assert_eq!(
        (user_in(&a).as_deref(), user_in(&b)),
        (Some("alice"), None),
        "logging out of one config keeps the other"
    );
    // A config.json that cannot be read changes nothing: the stored credentials stay.
    std::fs::write(a.join("config.json"), "{\"auths\": {").unwrap();
    let run = logout(&a);
    run.assert_failure();
    assert!(run.stderr.contains("config.json") && !run.stderr.contains("Removed"), "{run}");
    assert!(std::fs::read_to_string(a.join("kubectl-ko/credentials.json")).unwrap().contains("127.0.0.1:1"), "{run}");

    // DOCKER_CONFIG set to the default directory is the default config: a login made
    // without the variable is found with it (CI jobs and IDEs often export it), and back.
    let default = home.path().join(".docker");
    let run = KoCmd::new("kubectl-ko")
        .args(["login", "127.0.0.1:2", "-u", "carol", "-p", "carol-pw"])
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .run();
    run.assert_success();
    let run = KoCmd::new("docker-credential-ko")
        .arg("get")
        .stdin("127.0.0.1:2")
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", format!("{}/", default.display()))
        .run();
    assert!(run.stdout.contains("\"carol\""), "{run}");
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

/// The real `docker` CLI stores credentials through docker-credential-ko (`credsStore: ko`;
/// `docker login` checks them on the client side when no daemon answers), and a build then
/// pushes with them.
#[test]
fn docker_login_through_docker_credential_ko() {
    let docker = tool("docker");
    let registry = AuthRegistry::htpasswd();
    let home = tempfile::tempdir().unwrap();
    let docker_config = home.path().join(".docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(docker_config.join("config.json"), r#"{"credsStore":"ko"}"#).unwrap();
    let path = path_with(&bin_dir());
    let run = KoCmd::program(docker)
        .args(["login", &registry.host, "-u", USER, "--password-stdin"])
        .stdin(format!("{}\n", registry.password))
        .env("HOME", home.path())
        .env("PATH", &path)
        .env("DOCKER_HOST", format!("unix://{}/no-daemon.sock", home.path().display()))
        .run();
    run.assert_success();
    let config = std::fs::read_to_string(docker_config.join("config.json")).unwrap();
    assert!(!config.contains(&registry.password), "docker kept the password in config.json: {config}");
    let store = home.path().join(".config/kubectl-ko/credentials.json");
    assert!(std::fs::read_to_string(&store).unwrap().contains(USER));

    let run = hello_build(&registry.repo("docker-login")).env("HOME", home.path()).env("PATH", &path).run();
    assert_pushed(&registry, &reference(&run));
    assert!(run.stderr.contains("credsStore = docker-credential-ko"), "{run}");
    assert_hidden(&run, &registry.password);
}
