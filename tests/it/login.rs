//! Logging in end to end: the docker-credential-ko protocol, `kubectl ko login`/`logout`
//! against real registries (the helper a config names, several Docker configs, an unreachable
//! registry), and the real `docker` CLI storing credentials through docker-credential-ko.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::auth::{assert_hidden, assert_pushed, hello_build, path_with, reference};
use crate::registries::{AuthRegistry, USER};
use crate::util::*;

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
    // As Docker's own helpers: -v and --help succeed, anything but one action is a usage error,
    // and a request without a server gets the text Docker's client recognises.
    credential_helper(home.path(), "--version", "").assert_success();
    credential_helper(home.path(), "--help", "").assert_success();
    for args in [&[][..], &["get", "extra"][..]] {
        let run = KoCmd::new("docker-credential-ko").args(args).env("HOME", home.path()).run();
        assert_eq!((run.code(), run.stdout.starts_with("Usage: docker-credential-ko")), (Some(1), true), "{run}");
    }
    assert_eq!(credential_helper(home.path(), "get", "\n").stdout, "no credentials server URL\n");
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
    assert!(run.stderr.contains("check the user name and password") && !run.stderr.contains("log in again"), "{run}");
    assert_hidden(&run, wrong);
    assert!(!store.exists() && !config.exists(), "a refused login stores nothing");

    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"psFormat":"table {{.ID}}","credHelpers":{"gcr.io":"gcloud"}}"#).unwrap();
    // Standard input wins over -p, as in ko.
    let run = kubectl_ko(&["login", &registry.host, "-u", USER, "-p", wrong, "--password-stdin", "-v"])
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

    // Logins at the same time through the credsStore each keep their auths entry.
    let logins: Vec<_> = (0..8)
        .map(|i| {
            let cmd = kubectl_ko(&["login", &format!("127.0.0.1:{}", 2 + i), "-u", "u", "-p", "p"]);
            std::thread::spawn(move || cmd.run())
        })
        .collect();
    for login in logins {
        login.join().unwrap().assert_success();
    }
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(docker["auths"].as_object().map(|a| a.len()), Some(8), "{docker}");
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

    // A web server that is no registry (404 on /v2/) is named as such, not as a registry that
    // asks for no credentials.
    let rules = vec![
        crate::fault_proxy::Rule::new(
            Some("GET"),
            "/v2/",
            crate::fault_proxy::Fault::Status { code: 404, retry_after: None },
        )
        .times(usize::MAX),
    ];
    let web = crate::fault_proxy::FaultProxy::start(&registry(), rules);
    std::fs::write(&config, "{}").unwrap();
    let run =
        KoCmd::new("kubectl-ko").args(["login", &web.host, "-u", "alice", "-p", "pw"]).env("HOME", home.path()).run();
    run.assert_success();
    assert!(run.stderr.contains("answered 404 Not Found: no registry API answers there"), "{run}");

    // An empty credHelpers entry names no helper (Docker reads auths then): login takes the
    // server over, and logout gives it back.
    std::fs::write(&config, r#"{"credHelpers":{"127.0.0.1:4":""}}"#).unwrap();
    let session = |args: &[&str]| KoCmd::new("kubectl-ko").args(args).env("HOME", home.path()).run();
    session(&["login", "127.0.0.1:4", "-u", "alice", "-p", "s3cret-empty"]).assert_success();
    let docker: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(docker["credHelpers"]["127.0.0.1:4"], "ko", "{docker}");
    credential_helper(home.path(), "get", "127.0.0.1:4").assert_success();
    std::fs::write(&config, r#"{"credHelpers":{"127.0.0.1:4":""}}"#).unwrap();
    let run = session(&["logout", "127.0.0.1:4"]);
    run.assert_success();
    assert!(run.stderr.contains("Logged out of 127.0.0.1:4"), "{run}");
    credential_helper(home.path(), "get", "127.0.0.1:4").assert_failure();

    // A helper that is not installed fails the logout before anything changes.
    let before = r#"{"credHelpers":{"127.0.0.1:5":"surely-missing"},"auths":{"127.0.0.1:5":{"auth":"dTpw"}}}"#;
    std::fs::write(&config, before).unwrap();
    let run = session(&["logout", "127.0.0.1:5"]);
    crate::build_errors::assert_clear_error(&run, &["docker-credential-surely-missing", "is not installed"]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
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
