//! Google Artifact Registry and Container Registry with no login step: a real registry with
//! TLS and basic auth for `oauth2accesstoken` under a `*-docker.pkg.dev` or `*.gcr.io` name,
//! and Google's token endpoints on loopback ([`harness::GoogleTokens`]). Each kind of
//! Application Default Credentials pushes with no Docker config at all; a Docker config entry
//! wins; a failing source names Google; docker-credential-ko answers for Google hosts.

mod harness;

use std::path::Path;

use serde_json::Value;

use crate::registries::AuthRegistry;
use crate::util::*;
use harness::{CLIENT_EMAIL, GoogleTokens, Mode};

const USERNAME: &str = "oauth2accesstoken";
/// The variables ADC reads, cleared so the developer's own never leak into a test.
fn registry(tokens: &GoogleTokens, suffix: &str) -> AuthRegistry {
    AuthRegistry::tls_htpasswd(&cloud_host(suffix), USERNAME, &tokens.access_token)
}

/// `build . -v` of the hello fixture to a new repository of `registry`, trusting its CA, with
/// an empty HOME (no Docker config) and no Google variable but those the test sets.
fn hello_build(registry: &AuthRegistry, name: &str) -> KoCmd {
    let ca = registry.ca.as_ref().unwrap();
    ko(&["build", ".", "-v"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", registry.repo(name)).env("SSL_CERT_FILE", ca)
}

/// The build pushed an image that skopeo (not ours) reads back with the access token, and
/// printed none of the test's secrets.
#[track_caller]
fn assert_pushed(run: &Run, tokens: &GoogleTokens) {
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    let creds = format!("{USERNAME}:{}", tokens.access_token);
    let inspect =
        skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &format!("docker://{}", lines[0])]);
    inspect.assert_success();
    let manifest: Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert!(manifest["layers"].as_array().is_some_and(|l| !l.is_empty()), "{manifest}");
    assert_hidden(run, tokens);
}

#[track_caller]
fn assert_hidden(run: &Run, tokens: &GoogleTokens) {
    for secret in tokens.secrets() {
        assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret), "a secret was printed:\n{run}");
    }
}

#[test]
fn a_service_account_key_pushes_to_artifact_registry() {
    let tokens = GoogleTokens::start(Mode::Answer);
    let registry = registry(&tokens, "-docker.pkg.dev");
    let key = tokens.service_account_file();
    let run = hello_build(&registry, "google-sa").env("GOOGLE_APPLICATION_CREDENTIALS", &key).run();
    assert_pushed(&run, &tokens);
    assert!(run.stderr.contains(&format!("Google (service account in {})", key.display())), "{run}");
    assert_eq!(tokens.requests(), "token jwt-bearer\n", "one token for the whole build");
}

#[test]
fn gclouds_user_credentials_push_to_artifact_registry() {
    let tokens = GoogleTokens::start(Mode::Answer);
    let registry = registry(&tokens, "-docker.pkg.dev");
    let cmd = hello_build(&registry, "google-user");
    let gcloud = cmd.home().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    let file = gcloud.join("application_default_credentials.json");
    std::fs::write(&file, tokens.authorized_user_json()).unwrap();
    let run = cmd.run();
    assert_pushed(&run, &tokens);
    assert!(run.stderr.contains(&format!("Google (authorized user in {})", file.display())), "{run}");
    assert_eq!(tokens.requests(), "token refresh_token\n");
}

#[test]
fn an_external_account_exchanges_its_subject_token_and_impersonates() {
    let tokens = GoogleTokens::start(Mode::Answer);
    let registry = registry(&tokens, "-docker.pkg.dev");
    let file = tokens.external_account_file(false);
    let run = hello_build(&registry, "google-wif").env("GOOGLE_APPLICATION_CREDENTIALS", &file).run();
    assert_pushed(&run, &tokens);
    assert!(run.stderr.contains(&format!("Google (external account in {})", file.display())), "{run}");
    assert_eq!(tokens.requests(), "token token-exchange\ngenerateAccessToken\n");
}

#[test]
fn the_metadata_server_pushes_to_container_registry() {
    let tokens = GoogleTokens::start(Mode::Answer);
    let registry = registry(&tokens, ".gcr.io");
    let run = hello_build(&registry, "google-metadata").env("GCE_METADATA_HOST", tokens.metadata_host()).run();
    assert_pushed(&run, &tokens);
    assert!(run.stderr.contains(&format!("Google (metadata server at {})", tokens.metadata_host())), "{run}");
    assert_eq!(tokens.requests(), "metadata token\n", "asked with Metadata-Flavor: Google");
}

#[test]
fn a_docker_config_entry_wins_and_a_refusal_names_google() {
    let tokens = GoogleTokens::start(Mode::Refuse);
    let registry = registry(&tokens, "-docker.pkg.dev");
    let key = tokens.service_account_file();
    let cmd = hello_build(&registry, "google-docker-config").env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    write_docker_config(cmd.home().as_path(), &registry.auths_json(USERNAME, &tokens.access_token));
    let run = cmd.run();
    assert_pushed(&run, &tokens);
    assert!(run.stderr.contains(&format!("auths[{}]", registry.host)), "{run}");
    assert_eq!(tokens.requests(), "", "Google was not asked");

    let run = hello_build(&registry, "google-refused").env("GOOGLE_APPLICATION_CREDENTIALS", &key).run();
    run.assert_failure();
    let refusal = format!(
        "Google: the token service at {}/token refused the service account {CLIENT_EMAIL}: invalid_grant: \
         Invalid grant: account not found (HTTP 400)",
        tokens.url
    );
    assert!(run.stderr.contains(&refusal), "{run}");
    assert_hidden(&run, &tokens);
}

fn write_docker_config(home: &Path, json: &str) {
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(home.join(".docker/config.json"), json).unwrap();
}

#[test]
fn docker_credential_ko_answers_for_google_hosts() {
    let tokens = GoogleTokens::start(Mode::Answer);
    let key = tokens.service_account_file();
    let get = |host: &str| credential_get(host, &key);
    let run = get(&cloud_host("-docker.pkg.dev"));
    run.assert_success();
    let got: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(got["Username"], USERNAME, "{run}");
    assert_eq!(got["Secret"], tokens.access_token.as_str());
    let run = get("r.example");
    assert_eq!((run.code(), run.stdout.trim()), (Some(1), "credentials not found in native keychain"), "{run}");
    assert_eq!(tokens.requests(), "token jwt-bearer\n", "only the Google host asked for a token");
}

/// `docker-credential-ko get HOST` with only `GOOGLE_APPLICATION_CREDENTIALS=file`.
fn credential_get(host: &str, file: &Path) -> Run {
    KoCmd::new("docker-credential-ko").arg("get").stdin(host).env("GOOGLE_APPLICATION_CREDENTIALS", file).run()
}

#[test]
fn impersonation_and_subject_tokens_from_a_url() {
    let tokens = GoogleTokens::start(Mode::Impersonate);
    let host = cloud_host(".gcr.io");
    for (file, requests) in [
        (tokens.impersonated_file(), "token refresh_token\ngenerateAccessToken\n"),
        (tokens.external_account_file(true), "subject-token\ntoken token-exchange\ngenerateAccessToken\n"),
    ] {
        let before = tokens.requests();
        let run = credential_get(&host, &file);
        run.assert_success();
        let got: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some(USERNAME), Some(&*tokens.access_token)));
        assert_eq!(tokens.requests().strip_prefix(&before).unwrap(), requests, "{}", file.display());
    }
}
