//! The signing settings of a run: `--sign-key` (else `KO_SIGN_KEY`, else `.ko.yaml`'s
//! `signKey`), the key opened with `COSIGN_PASSWORD` before anything is built, `--provenance`
//! (on by default with a key) and `--sign-legacy-tags`. The password is handed to the key
//! reader and dropped; it never reaches an error or the output.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::PublishArgs;
use crate::config::KoConfig;
use crate::error::Error;
use crate::output;
use crate::publish::PublishError;
use crate::settings::Environment;
use crate::sign::key::KeySigner;
use crate::sign::provenance::RunFacts;
use crate::sign::{SignError, SignSettings};
use crate::time::{now_unix, rfc3339};

/// The signer for the publisher and the provenance facts for the builder (each `None` when
/// off). A bad key or a wrong password fails here, before any work.
pub(super) fn settings(
    publish: &PublishArgs,
    config: &KoConfig,
    env: &Environment,
    source_date: Option<i64>,
) -> Result<(Option<SignSettings>, Option<RunFacts>), Error> {
    let Some((origin, key)) = key(publish, config, env) else {
        if publish.provenance == Some(true) {
            return Err(Error::usage("--provenance", "a provenance attestation is signed: give --sign-key too"));
        }
        if publish.sign_legacy_tags {
            output::warn(
                "--sign-legacy-tags: no --sign-key (or KO_SIGN_KEY, or signKey in .ko.yaml), so nothing is signed",
            );
        }
        return Ok((None, None));
    };
    let signer = KeySigner::load(&key, env.text("COSIGN_PASSWORD"))
        .map_err(|e| sign_error(SignError::Key { origin, source: Box::new(e) }))?;
    let sign = SignSettings { signer: Arc::new(signer), legacy_tags: publish.sign_legacy_tags };
    if !publish.provenance.unwrap_or(true) {
        return Ok((Some(sign), None));
    }
    let when = source_date.map(rfc3339);
    let facts = RunFacts {
        builder_id: format!("https://github.com/kubectl-ko/kubectl-ko@v{}", env!("CARGO_PKG_VERSION")),
        tags: publish.tags(),
        goflags: env.text("GOFLAGS").filter(|v| !v.is_empty()).map(str::to_string),
        started: when.clone().unwrap_or_else(|| rfc3339(now_unix())),
        finished: when.unwrap_or_default(),
    };
    Ok((Some(sign), Some(facts)))
}

/// The key to sign with and where it was named: `--sign-key`, else `KO_SIGN_KEY`, else
/// `.ko.yaml`'s `signKey`. A leading `~/` in the variable or the file is the home directory,
/// as a shell would have made it of the flag.
fn key(publish: &PublishArgs, config: &KoConfig, env: &Environment) -> Option<(String, PathBuf)> {
    if let Some(flag) = publish.sign_key.clone().filter(|p| !p.as_os_str().is_empty()) {
        return Some(("--sign-key".to_string(), flag));
    }
    let home = |path: PathBuf| match (path.strip_prefix("~"), env.home()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    };
    if let Some(var) = env.non_empty("KO_SIGN_KEY") {
        return Some(("KO_SIGN_KEY".to_string(), home(PathBuf::from(var))));
    }
    let key = config.sign_key.clone()?;
    Some((format!("signKey in {}:", config.origin()), home(key)))
}

fn sign_error(e: SignError) -> Error {
    PublishError::from(e).into()
}
