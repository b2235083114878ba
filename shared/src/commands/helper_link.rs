//! Making `docker-credential-ko` reachable on PATH after `login`: krew links only `kubectl-ko`
//! onto PATH, but Docker and the suite run the helper by name. When it is not on PATH, a
//! symlink to the installed helper goes next to the `kubectl-ko` found on PATH.

use std::path::{Path, PathBuf};

use crate::output;
use crate::settings::Environment;

const HELPER_BINARY: &str = "docker-credential-ko";

fn on_path(env: &Environment, name: &str) -> Option<PathBuf> {
    let path = env.get("PATH")?;
    std::env::split_paths(path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The helper installed next to this binary (symlinks resolved).
fn installed_helper() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let helper = exe.parent()?.join(HELPER_BINARY);
    helper.is_file().then_some(helper)
}

/// The PATH directory that holds `kubectl-ko` (krew's bin directory, or wherever the user put it).
fn dispatcher_dir(env: &Environment) -> Option<PathBuf> {
    on_path(env, "kubectl-ko").and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Says what it found or did; problems are warnings, since the credentials are stored.
pub fn ensure_on_path(env: &Environment) {
    if let Some(found) = on_path(env, HELPER_BINARY) {
        output::detail(format!("{HELPER_BINARY} is on PATH at {}", found.display()));
        return;
    }
    let Some(helper) = installed_helper() else {
        output::warn(format!(
            "{HELPER_BINARY} is neither on PATH nor installed next to this binary; install it \
             (cargo install --path plugins/docker-credential-ko) so the stored credentials can be used"
        ));
        return;
    };
    let Some(dir) = dispatcher_dir(env) else {
        output::warn(format!(
            "{HELPER_BINARY} is not on PATH; add {} to PATH so the stored credentials can be used",
            helper.parent().unwrap_or(Path::new(".")).display()
        ));
        return;
    };
    let link = dir.join(HELPER_BINARY);
    match std::os::unix::fs::symlink(&helper, &link) {
        Ok(()) => output::step(format!(
            "Linked {} -> {} (next to kubectl-ko on PATH) so Docker and kubectl ko can run the helper",
            link.display(),
            helper.display()
        )),
        Err(e) => output::warn(format!(
            "{HELPER_BINARY} is not on PATH and linking it as {} failed ({e}); add {} to PATH",
            link.display(),
            helper.parent().unwrap_or(Path::new(".")).display()
        )),
    }
}
