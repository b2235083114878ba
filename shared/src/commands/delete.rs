//! `kubectl ko delete`: delete the objects the input files name; nothing is built.

use crate::cli::DeleteCommand;
use crate::cluster;
use crate::error::Error;

use super::apply::objects_of;
use super::resolve;

pub async fn run(command: DeleteCommand) -> Result<(), Error> {
    let manifests = resolve::load(&command.files)?;
    let texts: Vec<String> = manifests.iter().map(|m| m.render(&Default::default())).collect::<Result<_, _>>()?;
    let objects = objects_of(&manifests, &texts)?;
    let cluster = cluster::connect(&command.kube).await?;
    let mut kinds = cluster::prepare(&cluster, &objects).await?;
    cluster::delete(&cluster, &mut kinds, &objects, command.ignore_not_found).await?;
    Ok(())
}
