//! `docker-credential-ko`: Docker's credential-helper protocol over kubectl-ko's credential
//! store. `docker-credential-ko get <<< registry.example.com` prints the stored JSON.

use std::process::ExitCode;

fn main() -> ExitCode {
    let action = std::env::args().nth(1).unwrap_or_default();
    let ok = ko_core::credential_helper(
        &action,
        ko_core::Environment::process(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
    );
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
