//! `kubectl ko delete`: delete the objects the input files name; nothing is built.

use crate::cli::DeleteCommand;
use crate::cluster;
use crate::error::Error;

use super::apply::unresolved_objects;
use super::resolve;

pub async fn run(command: DeleteCommand) -> Result<(), Error> {
    let manifests = resolve::load(&command.files)?;
    let objects = unresolved_objects(&manifests)?;
    let cluster = cluster::connect(&command.kube).await?;
    let mut kinds = cluster::prepare(&cluster, &objects).await?;
    cluster::delete(&cluster, &mut kinds, &objects, command.ignore_not_found).await?;
    Ok(())
}
