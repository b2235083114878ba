//! `kubectl ko create`: `apply`, but each object is created, and one that exists is an error
//! (the others are still created), as with `kubectl create`.

use crate::cli::CreateCommand;
use crate::cluster::{ApplyOptions, Verb};
use crate::error::Error;

use super::apply::{Deploy, deploy, dry_run};

pub async fn run(command: CreateCommand) -> Result<(), Error> {
    let dry_run = dry_run(&command.deploy.dry_run)?;
    let options = ApplyOptions { verb: Verb::Create, force_conflicts: None, dry_run };
    deploy(Deploy { args: &command.deploy, options }).await
}
