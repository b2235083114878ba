//! Making `docker-credential-ko` reachable on PATH after `login`. The suite is one executable
//! that answers to every command name, and krew links only `kubectl-ko` onto PATH; Docker and
//! the suite run the helper by name. When no `docker-credential-ko` is on PATH, a symlink of
//! that name to `kubectl-ko` goes next to the `kubectl-ko` found on PATH. The link is relative
//! (`docker-credential-ko -> kubectl-ko`), so it follows krew's link through upgrades.

use std::path::{Path, PathBuf};

use super::dispatch::{CREDENTIAL_HELPER, DISPATCHER};
use crate::output;
use crate::settings::Environment;

/// The PATH directory that holds `kubectl-ko` (krew's bin directory, or wherever the user put it).
fn dispatcher_dir(env: &Environment) -> Option<PathBuf> {
    env.find_on_path(DISPATCHER).and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Links `dir/docker-credential-ko` to `kubectl-ko` in the same directory, replacing a dangling
/// link of that name (left by an uninstalled or moved suite).
fn link_helper(dir: &Path) -> std::io::Result<PathBuf> {
    let link = dir.join(CREDENTIAL_HELPER);
    if link.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) && !link.exists() {
        std::fs::remove_file(&link)?;
    }
    std::os::unix::fs::symlink(DISPATCHER, &link)?;
    Ok(link)
}

/// Says what it found or did; problems are warnings, since the credentials are stored.
pub fn ensure_on_path(env: &Environment) {
    if let Some(found) = env.find_on_path(CREDENTIAL_HELPER) {
        output::detail(format!("{CREDENTIAL_HELPER} is on PATH at {}", found.display()));
        return;
    }
    let Some(dir) = dispatcher_dir(env) else {
        output::warn(format!(
            "neither {CREDENTIAL_HELPER} nor {DISPATCHER} is on PATH; put {DISPATCHER} on PATH and link \
             {CREDENTIAL_HELPER} to it (scripts/install.sh does both) so the stored credentials can be used"
        ));
        return;
    };
    match link_helper(&dir) {
        Ok(link) => output::step(format!(
            "Linked {} -> {DISPATCHER} (next to {DISPATCHER} on PATH) so Docker and kubectl ko can run the helper",
            link.display()
        )),
        Err(e) => output::warn(format!(
            "{CREDENTIAL_HELPER} is not on PATH and linking it as {} failed ({e}); run: ln -s {DISPATCHER} {}",
            dir.join(CREDENTIAL_HELPER).display(),
            dir.join(CREDENTIAL_HELPER).display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_path(dir: &Path) -> Environment {
        Environment::from_pairs([("PATH", dir.as_os_str())])
    }

    #[test]
    fn links_the_helper_to_the_dispatcher_next_to_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DISPATCHER), "").unwrap();
        let env = env_with_path(dir.path());
        assert_eq!(env.find_on_path(CREDENTIAL_HELPER), None);
        ensure_on_path(&env);
        let link = dir.path().join(CREDENTIAL_HELPER);
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new(DISPATCHER));
        assert_eq!(env.find_on_path(CREDENTIAL_HELPER), Some(link));
    }

    #[test]
    fn a_dangling_helper_link_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DISPATCHER), "").unwrap();
        let link = dir.path().join(CREDENTIAL_HELPER);
        std::os::unix::fs::symlink("/nonexistent/kubectl-ko", &link).unwrap();
        ensure_on_path(&env_with_path(dir.path()));
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new(DISPATCHER));
    }

    #[test]
    fn without_the_dispatcher_on_path_nothing_is_linked() {
        let dir = tempfile::tempdir().unwrap();
        ensure_on_path(&env_with_path(dir.path()));
        assert!(dir.path().join(CREDENTIAL_HELPER).symlink_metadata().is_err());
    }
}
