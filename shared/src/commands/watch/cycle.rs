//! One cycle of a watch: read the inputs again, resolve them (the builder skips `go build` for
//! every image whose inputs are unchanged, and an unchanged binary gives the same digest), then
//! print the stream (`resolve`) or server-side apply only the objects whose resolved content
//! differs from what this watch last applied (`apply`). What a cycle did is returned as a
//! [`Report`] for the summary line.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::cli::{BuildArgs, FileArgs, KubeArgs, PublishArgs};
use crate::cluster::{self, ApplyOptions, Cluster, Object};
use crate::error::Error;
use crate::settings::Environment;

use super::super::{apply, resolve};

/// What every cycle is given.
pub struct Inputs<'a> {
    pub files: &'a FileArgs,
    pub publish: &'a PublishArgs,
    pub build: &'a BuildArgs,
}

/// Where the resolved objects go.
pub enum Target<'a> {
    /// Printed on stdout, `---` between cycles.
    Print,
    /// Server-side applied.
    Apply { kube: &'a KubeArgs, options: ApplyOptions, prune: bool },
}

/// What the watch remembers between cycles.
#[derive(Default)]
pub struct State {
    /// The reference each `ko://` value was last resolved to.
    references: HashMap<String, String>,
    /// Each object applied, by identity: its resolved content and the object.
    applied: BTreeMap<String, (String, Object)>,
    /// The package directories `go list` last named.
    pub package_dirs: Vec<PathBuf>,
    cluster: Option<Cluster>,
    cycles: usize,
    /// The last cycle succeeded.
    last_ok: bool,
}

/// What one cycle did.
#[derive(Default, Debug)]
pub struct Report {
    /// The `ko://` values whose image changed (all of them on the first cycle).
    pub rebuilt: Vec<String>,
    /// How many images the inputs reference.
    pub images: usize,
    /// The objects sent to the cluster.
    pub applied: Vec<String>,
    /// Documents applied before and now gone from the inputs.
    pub gone: Vec<String>,
    /// Those of `gone` that were deleted (`--prune`).
    pub pruned: Vec<String>,
    /// The stream was printed (`resolve`).
    pub printed: bool,
    /// Only YAML changed: the images of the last cycle were used, nothing was built.
    pub reused: bool,
}

/// An object's identity: its API group and kind, namespace and name.
fn identity(object: &Object) -> String {
    let ns = object.namespace.as_deref().unwrap_or("");
    format!("{}/{}/{}/{}", object.gvk.group, object.gvk.kind, ns, object.name)
}

/// Runs one cycle; `yaml_only` says that only manifests changed (see
/// `inputs::only_manifests`). On an error nothing is remembered, so the next cycle tries again.
pub async fn run(
    inputs: &Inputs<'_>,
    target: &Target<'_>,
    state: &mut State,
    yaml_only: bool,
) -> Result<Report, Error> {
    state.cycles += 1;
    let outcome = run_cycle(inputs, target, state, yaml_only).await;
    state.last_ok = outcome.is_ok();
    outcome
}

async fn run_cycle(
    inputs: &Inputs<'_>,
    target: &Target<'_>,
    state: &mut State,
    yaml_only: bool,
) -> Result<Report, Error> {
    let manifests = resolve::load(inputs.files)?;
    let known = manifests.iter().flat_map(|m| m.references()).all(|r| state.references.contains_key(r.value));
    let reused = yaml_only && state.last_ok && known;
    let replacements = if reused {
        state.references.clone()
    } else {
        let mut dirs = Vec::new();
        let result = resolve::publish_references_seen(&manifests, inputs.publish, inputs.build, &mut dirs).await;
        if !dirs.is_empty() {
            state.package_dirs = dirs;
        }
        result?
    };
    let mut report = Report { images: replacements.len(), reused, ..Report::default() };
    let mut rebuilt: Vec<String> =
        replacements.iter().filter(|(k, v)| state.references.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    rebuilt.sort();
    report.rebuilt = rebuilt;
    match target {
        Target::Print => {
            let rendered = manifests.iter().map(|m| m.rendered(&replacements)).collect::<Result<Vec<_>, _>>()?;
            if state.cycles > 1 {
                crate::output::result_bytes(b"---\n");
            }
            resolve::print_joined(&rendered);
            report.printed = true;
        }
        Target::Apply { kube, options, prune } => {
            let texts: Vec<String> = manifests.iter().map(|m| m.render(&replacements)).collect::<Result<_, _>>()?;
            let objects = apply::objects_of(&manifests, &texts)?;
            apply_changed(state, kube, *options, *prune, objects, &mut report).await?;
        }
    }
    state.references = replacements;
    Ok(report)
}

/// Applies the objects whose content changed, then reports (and with `prune` deletes) the ones
/// that are gone.
async fn apply_changed(
    state: &mut State,
    kube: &KubeArgs,
    options: ApplyOptions,
    prune: bool,
    objects: Vec<Object>,
    report: &mut Report,
) -> Result<(), Error> {
    let current: Vec<(String, String, Object)> =
        objects.into_iter().map(|o| (identity(&o), serde_json::to_string(&o.value).unwrap_or_default(), o)).collect();
    let changed: Vec<Object> = current
        .iter()
        .filter(|(id, content, _)| state.applied.get(id).is_none_or(|(c, _)| c != content))
        .map(|(_, _, o)| o.clone())
        .collect();
    let gone: Vec<Object> = state
        .applied
        .iter()
        .filter(|(id, _)| !current.iter().any(|(c, _, _)| c == *id))
        .map(|(_, (_, o))| o.clone())
        .collect();
    report.gone = gone.iter().map(Object::display).collect();
    if changed.is_empty() && (gone.is_empty() || !prune) {
        // Reported once; without --prune a gone object is no longer this watch's business.
        gone.iter().for_each(|o| drop(state.applied.remove(&identity(o))));
        return Ok(());
    }
    let cluster = match &state.cluster {
        Some(cluster) => cluster,
        None => state.cluster.insert(cluster::connect(kube, Environment::process()).await?),
    };
    let prune = if prune { gone.as_slice() } else { &[] };
    if let Err(e) = send(cluster, &changed, prune, options).await {
        // Connect again next time: the kubeconfig or the cluster may have been fixed.
        state.cluster = None;
        return Err(e.into());
    }
    report.applied = changed.iter().map(Object::display).collect();
    report.pruned = prune.iter().map(Object::display).collect();
    gone.iter().for_each(|o| drop(state.applied.remove(&identity(o))));
    for (id, content, object) in current {
        state.applied.insert(id, (content, object));
    }
    Ok(())
}

/// Applies `changed`, then deletes `prune`.
async fn send(
    cluster: &Cluster,
    changed: &[Object],
    prune: &[Object],
    options: ApplyOptions,
) -> Result<(), cluster::ClusterError> {
    if !changed.is_empty() {
        let mut kinds = cluster::prepare(cluster, changed).await?;
        cluster::apply(cluster, &mut kinds, changed, options).await?;
    }
    if !prune.is_empty() {
        cluster::delete(cluster, &mut cluster::KindCache::default(), prune, true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_tells_kinds_namespaces_and_names_apart() {
        let objects = cluster::objects(
            "t.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\n",
        )
        .unwrap();
        assert_eq!(identity(&objects[0]), "apps/Deployment//a");
        assert_eq!(identity(&objects[1]), "/Service/x/a");
    }
}
