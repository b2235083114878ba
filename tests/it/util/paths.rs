//! Where things are: the workspace, the suite's built binaries, the fixture apps, and the
//! external tools the tests run (on `PATH`, or in the system directories).

use std::env;
use std::path::{Path, PathBuf};

/// The workspace root (the parent of the `tests/` crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate has a parent directory").to_path_buf()
}

/// The directory holding the built debug binaries: `KO_TEST_BIN_DIR` (exported by
/// scripts/test.sh), else `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = env::var_os("KO_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => workspace().join(dir).join("debug"),
        None => workspace().join("target").join("debug"),
    }
}

/// One of the suite's binaries, e.g. `bin("kubectl-ko-build")`.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(format!("{name}{}", env::consts::EXE_SUFFIX))
}

/// A fixture app: `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests").join("fixtures").join(name)
}

/// A program on `PATH`, or in the system directories that a non-login `PATH` may lack
/// (runc is in /usr/sbin on Debian). A test that needs a missing tool fails here, naming it.
pub fn tool(name: &str) -> PathBuf {
    let path = env::var_os("PATH").unwrap_or_default();
    let system = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    env::split_paths(&path)
        .chain(system.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed (not on PATH nor in the system directories): run the tests with \
                 scripts/test.sh, which installs or builds the tools they run (skopeo, umoci, runc, docker, kubectl, ...)"
            )
        })
}
