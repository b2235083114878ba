//! Azure Container Registry with no login step (issue 22): `kubectl ko build` pushes to
//! `kotest.azurecr.io:PORT` with an Entra ID token from `AZURE_CLIENT_SECRET` or
//! `AZURE_FEDERATED_TOKEN_FILE`, exchanged at the registry's `/oauth2/exchange` for the refresh
//! token the registry takes ([`harness::Acr`]); a Docker config entry wins; a refused client
//! says `ACR: ...` in one line; `docker-credential-ko get` answers for the host. No output
//! holds a secret.

mod harness;

use serde_json::Value;

use crate::auth::reference;
use crate::util::*;
use harness::{Acr, CLIENT_ID, TENANT, USERNAME};

#[track_caller]
fn assert_no_secret(acr: &Acr, run: &Run) {
    for secret in acr.secrets() {
        assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret), "a secret was printed:\n{run}");
    }
}

#[test]
fn a_client_secret_pushes_with_no_docker_config() {
    let acr = Acr::start();
    let run = acr.build("secret").env("AZURE_CLIENT_SECRET", &acr.client_secret).run();
    acr.assert_pushed(&reference(&run));
    let source = format!("{}: using credentials from ACR (AZURE_CLIENT_SECRET of client {CLIENT_ID})", acr.host);
    assert!(run.stderr.contains(&source), "-v names the source:\n{run}");
    assert_eq!(acr.exchanges(), ["exchange ok"], "one exchange for the whole push (cached)");
    let requests = acr.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!((&requests[0]["ok"], &requests[0]["what"]), (&Value::Bool(true), &Value::from("secret")));
    assert_eq!(requests[0]["path"], format!("/{TENANT}/oauth2/v2.0/token"));
    assert_no_secret(&acr, &run);
}

#[test]
fn a_federated_token_file_pushes_and_an_unreadable_one_is_named() {
    let acr = Acr::start();
    let file = acr.federated_token_file();
    let run = acr.build("federated").env("AZURE_FEDERATED_TOKEN_FILE", &file).run();
    acr.assert_pushed(&reference(&run));
    let source = format!("ACR (AZURE_FEDERATED_TOKEN_FILE {} of client {CLIENT_ID})", file.display());
    assert!(run.stderr.contains(&source), "-v names the source:\n{run}");
    assert_eq!(acr.exchanges(), ["exchange ok"]);
    assert_eq!(acr.token_requests()[0]["what"], "assertion");
    assert_no_secret(&acr, &run);

    let missing = file.with_file_name("no-such-token");
    let run = acr.build("missing-token").env("AZURE_FEDERATED_TOKEN_FILE", &missing).run();
    run.assert_failure();
    let named = format!("ACR: reading AZURE_FEDERATED_TOKEN_FILE {}: ", missing.display());
    assert!(run.stderr.contains(&named), "{run}");
}

#[test]
fn a_docker_config_entry_for_the_host_wins() {
    let acr = Acr::start();
    let cmd = acr.build("docker-config").env("AZURE_CLIENT_SECRET", "not-the-secret-0451");
    let dir = cmd.home().join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), acr.auths_json()).unwrap();
    let run = cmd.run();
    acr.assert_pushed(&reference(&run));
    assert!(run.stderr.contains(&format!("using credentials from auths[{}]", acr.host)), "{run}");
    assert!(acr.token_requests().is_empty() && acr.exchanges().is_empty(), "ACR was not asked");
    assert_no_secret(&acr, &run);
}

#[test]
fn a_refused_client_secret_fails_in_one_line_naming_acr() {
    let acr = Acr::start();
    let wrong = "wrong-client-secret-2718";
    let run = acr.build("refused").env("AZURE_CLIENT_SECRET", wrong).run();
    run.assert_failure();
    let authority = acr.authority.trim_end_matches('/');
    let refused = format!("ACR: Entra ID at {authority} refused client {CLIENT_ID} in tenant {TENANT}: AADSTS7000215");
    assert!(run.stderr.lines().any(|l| l.contains(&refused)), "{run}");
    assert!(!run.stderr.contains("Trace ID"), "only the description's first line:\n{run}");
    assert!(!run.stdout.contains(wrong) && !run.stderr.contains(wrong), "{run}");
    assert_no_secret(&acr, &run);
    assert!(acr.exchanges().is_empty());
}

#[test]
fn docker_credential_ko_get_answers_for_the_acr_host() {
    let acr = Acr::start();
    let run = acr.credential_helper_get(&acr.client_secret);
    run.assert_success();
    let answer: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}:\n{run}"));
    assert_eq!(answer["Username"], USERNAME, "{run}");
    assert_eq!(answer["Secret"], acr.refresh_token.as_str());
    assert_eq!(acr.exchanges(), ["exchange ok"]);
}

#[test]
fn a_refused_exchange_names_the_registry() {
    let acr = Acr::start_with_front_tenant("another-tenant");
    let run = acr.credential_helper_get(&acr.client_secret);
    run.assert_failure();
    let refused = format!("ACR: {} refused the token exchange: 401 Unauthorized: UNAUTHORIZED: ", acr.host);
    assert!(run.stderr.lines().chain(run.stdout.lines()).any(|l| l.contains(&refused)), "{run}");
    assert_eq!(acr.exchanges().len(), 1, "{:?}", acr.exchanges());
    assert_no_secret(&acr, &run);
}
