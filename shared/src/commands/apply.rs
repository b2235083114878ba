//! `kubectl ko apply`: check the objects against the cluster, resolve (build and publish every
//! `ko://` image), then server-side apply the resolved objects.

use crate::cli::ApplyCommand;
use crate::cluster::{self, ApplyOptions, Object};
use crate::error::Error;
use crate::yaml::ManifestFile;

use super::resolve;

/// The objects of every file, in order, with the lines of the files as the user wrote them.
pub fn objects_of(manifests: &[ManifestFile], texts: &[String]) -> Result<Vec<Object>, Error> {
    let mut all = Vec::new();
    for (manifest, text) in manifests.iter().zip(texts) {
        for mut object in cluster::objects(manifest.name(), text)? {
            object.line = manifest.original_line(object.line);
            all.push(object);
        }
    }
    Ok(all)
}

/// The selected objects as written, `ko://` strings still in place: enough to check kinds
/// against the cluster (before any build) or to delete.
pub fn unresolved_objects(manifests: &[ManifestFile]) -> Result<Vec<Object>, Error> {
    let texts: Vec<String> = manifests.iter().map(|m| m.render(&Default::default())).collect::<Result<_, _>>()?;
    objects_of(manifests, &texts)
}

pub async fn run(command: ApplyCommand) -> Result<(), Error> {
    let dry_run = match command.dry_run.as_str() {
        "none" | "false" => false,
        "server" => true,
        other => {
            return Err(Error::usage(
                "--dry-run",
                format!(
                    "{other:?} is not supported; use --dry-run=server (the API server checks without persisting) or none"
                ),
            ));
        }
    };
    let manifests = resolve::load(&command.files)?;
    let planned = unresolved_objects(&manifests)?;
    let cluster = cluster::connect(&command.kube).await?;
    let mut kinds = cluster::prepare(&cluster, &planned).await?;

    let texts = resolve::resolve(&manifests, &command.publish, &command.build).await?;
    let objects = objects_of(&manifests, &texts)?;
    let options = ApplyOptions { force_conflicts: command.force_conflicts, dry_run };
    cluster::apply(&cluster, &mut kinds, &objects, options).await?;
    Ok(())
}
