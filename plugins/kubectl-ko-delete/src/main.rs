//! `kubectl-ko-delete`: `kubectl ko delete`, as a program of its own for
//! `cargo install --path plugins/kubectl-ko-delete`. The release archive ships only `kubectl-ko`, which
//! is this program too when it runs under this name (a symlink or a copy); both run the same
//! library entry.

fn main() -> std::process::ExitCode {
    ko_core::commands::dispatch::main_as("kubectl-ko-delete")
}
