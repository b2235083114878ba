//! `kubectl ko logout`: undo `login`: erase the stored credentials and remove the
//! `credHelpers` entry that names docker-credential-ko, and any `auths` entry, for SERVER.
//! When the Docker config names another helper for SERVER (in `credHelpers`, or as its
//! `credsStore`), that helper is asked to erase them, and its entry stays (as `docker logout`
//! does).

use crate::auth::{CredentialStore, DockerConfigFile, Helper, config_path, helper_server, normalise_host};
use crate::cli::LogoutCommand;
use crate::error::Error;
use crate::output;
use crate::settings::Environment;

use super::login::HELPER;

pub async fn run(command: LogoutCommand) -> Result<(), Error> {
    let host = normalise_host(&command.server);
    if host.is_empty() {
        return Err(Error::usage("SERVER", "name the registry, for example registry.example.com:5000"));
    }
    let server = helper_server(&host);
    let env = Environment::process();
    let store = CredentialStore::new(env);
    // One lock for both files, as `login` takes it.
    let lock = store.lock()?;
    // Read first: a config that cannot be read changes nothing, in either file.
    let mut config = DockerConfigFile::load(&config_path(env))?;
    let helper_removed = config.remove_cred_helper(&server, HELPER);
    let auths_removed = config.remove_auths(&server);
    // The helper Docker would ask once our entries are gone erases first: one that fails (not
    // installed, say) leaves both files as they were.
    let mut erased_by_other = false;
    if let Some((other, source)) = config.other_helper(&server, HELPER) {
        erased_by_other = Helper::new(&other).erase(&server, &source, &config.path().display().to_string()).await?;
        if erased_by_other {
            output::step(format!("Erased the credentials for {host} with docker-credential-{other} ({source})"));
        }
    }
    let erased = store.erase_locked(&lock, &server)?;
    if erased {
        output::step(format!("Removed the credentials for {host} from {}", store.path().display()));
    }
    if helper_removed || auths_removed {
        config.save()?;
    }
    drop(lock);
    if helper_removed {
        output::step(format!("Removed credHelpers[{server}] from {}", config.path().display()));
    }
    if auths_removed {
        output::step(format!("Removed auths[{server}] from {}", config.path().display()));
    }
    if !(erased || helper_removed || auths_removed || erased_by_other) {
        output::step(format!("Not logged in to {host}"));
    } else {
        output::step(format!("Logged out of {host}"));
    }
    Ok(())
}
