//! `kubectl-ko`: the one executable of the suite, which krew puts on PATH. Run as `kubectl ko`
//! it runs the subcommand named by its first argument; under another name of the suite
//! (`kubectl-ko-build`, `docker-credential-ko`, `kubectl_complete-ko`, ...: a symlink or a
//! copy) it is that program. See `ko_core::commands::dispatch`.

use ko_core::commands::dispatch::{self, BuildInfo};

fn main() -> std::process::ExitCode {
    // The commit comes from build.rs.
    dispatch::main(BuildInfo { version: env!("CARGO_PKG_VERSION"), commit: env!("KUBECTL_KO_COMMIT") })
}
