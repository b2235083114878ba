//! `kubectl ko login`: check the credentials against the registry, store them with
//! docker-credential-ko, point Docker's `credHelpers[SERVER]` at it (dropping an `auths`
//! entry it replaces), and make sure the helper can be found on PATH. A refused password
//! stores nothing; a registry that cannot be reached is warned about, and the credentials are
//! stored anyway, as ko (which never asks the registry) does. When the Docker config already
//! names another helper for the server, the credentials go to that helper, as with Docker and
//! ko, and the config is left alone; so do they when its `credsStore` names another helper
//! (`osxkeychain`, `pass`, `desktop`), and `auths` lists the server with no password, as
//! Docker and ko write it.

use std::io::Read;

use crate::auth::{
    Credential, CredentialStore, DockerConfigFile, FoundCredential, Helper, Keychain, Secret, config_path,
    helper_server, normalise_host,
};
use crate::cli::LoginCommand;
use crate::error::Error;
use crate::output;
use crate::registry::{ClientOptions, LoginCheck, Reference, RegistryClient, RegistryError};
use crate::settings::Environment;

use super::helper_link;

/// The suffix Docker config uses for our helper: `credHelpers[SERVER] = "ko"`.
pub const HELPER: &str = "ko";

/// The password, from `-p` or standard input (which wins when both are given, as in ko). As
/// in ko (crane's login), standard input loses one trailing newline and then one trailing
/// carriage return, nothing more.
fn password(command: &LoginCommand) -> Result<Option<Secret>, Error> {
    match (&command.password, command.password_stdin) {
        (Some(p), false) => Ok(Some(Secret::new(p.clone()))),
        (_, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::usage("--password-stdin", format!("reading standard input: {e}")))?;
            Ok(Some(Secret::new(trim_one_line_end(&text))))
        }
        (None, false) => Ok(None),
    }
}

fn trim_one_line_end(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

pub async fn run(command: LoginCommand) -> Result<(), Error> {
    // A password alone is a login, as in ko: some registries take a token with no username.
    let username = command.username.clone().unwrap_or_default();
    let password = match password(&command)? {
        None if username.is_empty() => {
            return Err(Error::usage(
                "--password",
                "username and password required (-u USER and -p or --password-stdin)",
            ));
        }
        None => {
            return Err(Error::usage("--password", format!("no password for {username}; give -p or --password-stdin")));
        }
        Some(p) if p.expose().is_empty() => return Err(Error::usage("--password", "the password is empty")),
        Some(p) => p,
    };
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

    let (who, source) = if username.is_empty() {
        ("(no username)".to_string(), "`kubectl ko login -p`".to_string())
    } else {
        (username.clone(), format!("`kubectl ko login -u {username}`"))
    };
    let given = FoundCredential {
        credential: Credential::Basic { username: username.clone(), password: password.clone() },
        source: source.clone(),
    };
    let options = ClientOptions::new(command.insecure_registry, &command.registry_ca_file, Environment::process())?;
    let client = RegistryClient::new(Keychain::with_sources(vec![Box::new(given)]), options)?;
    output::step(format!("Checking the credentials for {who} with {host}"));
    match client.check_login(&host).await {
        Ok(LoginCheck::Accepted) => {}
        Ok(LoginCheck::NotAsked) => output::warn(format!("{host} asks for no credentials; storing them anyway")),
        Ok(LoginCheck::NoRegistryApi(status)) => output::warn(format!(
            "{host}/v2/ answered {status}: no registry API answers there (is the name right?); storing the credentials anyway"
        )),
        Err(RegistryError::Unreachable { detail, hint, .. }) => output::warn(format!(
            "the credentials could not be checked: {host} cannot be reached ({detail}); storing them anyway ({hint})"
        )),
        // Logging in again is what failed: the way out is other credentials.
        Err(RegistryError::Unauthorized { registry, detail, .. }) => {
            let hint =
                format!("the registry refused the credentials given to {source}; check the user name and password");
            return Err(RegistryError::Unauthorized { registry, detail, hint }.into());
        }
        Err(e) => return Err(e.into()),
    }

    let env = Environment::process();
    let config_file = config_path(env);
    let config = DockerConfigFile::load(&config_file)?;
    if let Some((other, source)) = config.other_helper(&server, HELPER) {
        let shown = config_file.display().to_string();
        Helper::new(&other).store(&server, &username, password.expose(), &source, &shown).await?;
        output::step(format!("Stored the credentials with docker-credential-{other} ({source})"));
        // As Docker records a login its credsStore keeps: the server, with no password. Under
        // the lock `login` and `logout` take, read again: logins at the same time each keep
        // their entry.
        if config.cred_helper(&server).is_none() {
            drop(config);
            let lock = CredentialStore::new(env).lock()?;
            let mut config = DockerConfigFile::load(&config_file)?;
            config.set_empty_auths(&server)?;
            config.save()?;
            drop(lock);
        }
        output::step(format!("Login Succeeded: {host}"));
        return Ok(());
    }
    drop(config);
    let store = CredentialStore::new(env);
    // One lock for both files: another login or logout at the same time waits its turn.
    let lock = store.lock()?;
    // The config is edited first, in memory: one that cannot take the entry (a credHelpers
    // that is no object) stores nothing.
    let mut config = DockerConfigFile::load(&config_file)?;
    config.set_cred_helper(&server, HELPER)?;
    // A password left in `auths` would be stale beside the helper (and read by tools that
    // look there first).
    let replaced = config.remove_auths(&server);
    store.store_locked(&lock, &server, &username, &password)?;
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

#[cfg(test)]
mod tests {
    use super::trim_one_line_end;

    #[test]
    fn standard_input_loses_one_line_end_as_in_ko() {
        assert_eq!(trim_one_line_end("s3cret\n"), "s3cret");
        assert_eq!(trim_one_line_end("s3cret\r\n"), "s3cret");
        assert_eq!(trim_one_line_end("s3cret"), "s3cret");
        assert_eq!(trim_one_line_end("s3cret\n\n"), "s3cret\n");
        assert_eq!(trim_one_line_end("s3cret \n"), "s3cret ");
    }
}
