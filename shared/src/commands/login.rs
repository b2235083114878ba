//! `kubectl ko login`: check the credentials against the registry, store them with
//! docker-credential-ko, point Docker's `credHelpers[SERVER]` at it (dropping an `auths`
//! entry it replaces), and make sure the helper can be found on PATH. A refused password
//! stores nothing; a registry that cannot be reached is warned about, and the credentials are
//! stored anyway, as ko (which never asks the registry) does. When the Docker config already
//! names another helper for the server, the credentials go to that helper, as with Docker and
//! ko, and the config is left alone.

use std::io::Read;

use crate::auth::{
    Credential, CredentialStore, DockerConfigFile, FoundCredential, Helper, Keychain, Secret, config_path,
    helper_server, normalise_host,
};
use crate::cli::LoginCommand;
use crate::error::Error;
use crate::output;
use crate::registry::{ClientOptions, Reference, RegistryClient, RegistryError};
use crate::settings::Environment;

use super::helper_link;

/// The suffix Docker config uses for our helper: `credHelpers[SERVER] = "ko"`.
pub const HELPER: &str = "ko";

fn password(command: &LoginCommand) -> Result<Secret, Error> {
    match (&command.password, command.password_stdin) {
        (Some(_), true) => Err(Error::usage("--password", "use either --password or --password-stdin, not both")),
        (Some(p), false) => Ok(Secret::new(p.clone())),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::usage("--password-stdin", format!("reading standard input: {e}")))?;
            Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
        }
        (None, false) => {
            Err(Error::usage("--password", "username and password required (-u USER and -p or --password-stdin)"))
        }
    }
}

pub async fn run(command: LoginCommand) -> Result<(), Error> {
    let username = command.username.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
        Error::usage("--username", "username and password required (-u USER and -p or --password-stdin)")
    })?;
    let password = password(&command)?;
    if password.expose().is_empty() {
        return Err(Error::usage("--password", "the password is empty"));
    }
    let host = normalise_host(&command.server);
    if host.is_empty() {
        return Err(Error::usage("SERVER", "name the registry, for example registry.example.com:5000"));
    }
    // Checked before any request: a name no host can have must not be retried as if the
    // network had failed.
    Reference::validate_registry(&host).map_err(|reason| {
        Error::usage(
            "SERVER",
            format!(
                "{:?} is not a registry name: {reason}; use host[:port], for example registry.example.com:5000",
                command.server
            ),
        )
    })?;
    let server = helper_server(&host);

    let given = FoundCredential {
        credential: Credential::Basic { username: username.clone(), password: password.clone() },
        source: format!("`kubectl ko login -u {username}`"),
    };
    let options = ClientOptions::new(command.insecure_registry, &command.registry_ca_file, Environment::process())?;
    let client = RegistryClient::new(Keychain::with_sources(vec![Box::new(given)]), options)?;
    output::step(format!("Checking the credentials for {username} with {host}"));
    match client.check_login(&host).await {
        Ok(true) => {}
        Ok(false) => output::warn(format!("{host} asks for no credentials; storing them anyway")),
        Err(RegistryError::Unreachable { detail, hint, .. }) => output::warn(format!(
            "the credentials could not be checked: {host} cannot be reached ({detail}); storing them anyway ({hint})"
        )),
        Err(e) => return Err(e.into()),
    }

    let env = Environment::process();
    let config_file = config_path(env);
    let other = DockerConfigFile::load(&config_file)?.cred_helper(&server).filter(|h| h != HELPER);
    if let Some(other) = other {
        let source = format!("credHelpers[{server}] = \"{other}\" in {}", config_file.display());
        let config = config_file.display().to_string();
        Helper::new(&other).store(&server, &username, password.expose(), &source, &config).await?;
        output::step(format!("Stored the credentials with docker-credential-{other} ({source})"));
        output::step(format!("Login Succeeded: {host}"));
        return Ok(());
    }
    let store = CredentialStore::new(env);
    // One lock for both files: another login or logout at the same time waits its turn.
    let lock = store.lock()?;
    store.store_locked(&lock, &server, &username, &password)?;
    let mut config = DockerConfigFile::load(&config_file)?;
    config.set_cred_helper(&server, HELPER)?;
    // A password left in `auths` would be stale beside the helper (and read by tools that
    // look there first).
    let replaced = config.remove_auths(&server);
    config.save()?;
    drop(lock);
    output::step(format!("Stored the credentials in {} (docker-credential-ko)", store.path().display()));
    output::step(format!("Set credHelpers[{server}] = \"{HELPER}\" in {}", config.path().display()));
    if replaced {
        output::step(format!("Removed the old auths[{server}] entry from {}", config.path().display()));
    }
    helper_link::ensure_on_path(env);
    output::step(format!("Login Succeeded: {host}"));
    Ok(())
}
