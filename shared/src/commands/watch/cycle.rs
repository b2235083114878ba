//! One cycle of a watch: read the inputs again, build the images whose inputs the changes touch
//! (`reads`) and keep the others' references, then print the stream (`resolve`) or server-side
//! apply only the objects whose resolved content differs from what this watch last applied
//! (`apply`). What a cycle did is returned as a [`Report`] for the summary line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use crate::cli::{BuildArgs, FileArgs, KubeArgs, PublishArgs};
use crate::cluster::{self, ApplyOptions, Cluster, Object};
use crate::error::Error;
use crate::settings::Environment;

use super::super::{apply, resolve};
use super::reads::Reads;

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
    /// Server-side applied, or handed to `kubectl apply -f -` with `kubectl`'s flags (the flags
    /// after `--`; no `prune` then).
    Apply { kube: &'a KubeArgs, options: ApplyOptions, prune: bool, kubectl: Option<Vec<String>> },
}

/// What the watch remembers between cycles.
#[derive(Default)]
pub struct State {
    /// The reference each `ko://` value was last resolved to.
    references: HashMap<String, String>,
    /// Each object applied, by identity: its resolved content and the object.
    applied: BTreeMap<String, (String, Object)>,
    /// Where each `ko://` value's package is, as `go list` last said.
    packages: BTreeMap<String, PathBuf>,
    /// What each value's image reads from its module (`None`: cannot tell, so every change).
    reads: HashMap<String, Option<Reads>>,
    /// The changes of failed cycles since the last that succeeded: the next cycle builds what
    /// they touch too.
    pending: BTreeSet<PathBuf>,
    cluster: Option<Cluster>,
    cycles: usize,
}

impl State {
    /// The directories to watch besides the inputs: the images' packages, and the modules
    /// used in place of versions (`go.work`, `replace`) that their imports were looked up in.
    pub fn package_dirs(&self) -> Vec<PathBuf> {
        let modules = self.reads.values().flatten().flat_map(|r| r.watched().modules);
        self.packages.values().cloned().chain(modules).collect()
    }

    /// The files to watch besides the inputs: the `go.work` of each image, with its sum, and
    /// the files that links in its `kodata` lead to.
    pub fn module_files(&self) -> Vec<PathBuf> {
        let files: BTreeSet<PathBuf> = self.reads.values().flatten().flat_map(|r| r.watched().files).collect();
        files.into_iter().collect()
    }

    /// The directories outside the modules that links in the images' `kodata` lead to.
    pub fn linked_trees(&self) -> Vec<PathBuf> {
        let trees: BTreeSet<PathBuf> = self.reads.values().flatten().flat_map(|r| r.watched().trees).collect();
        trees.into_iter().collect()
    }

    /// Whether `value`'s image must be built again after `changed` (and the changes of failed
    /// cycles before it): yes for a new value, when what it reads is unknown, and when a change
    /// touches what it reads or the configuration.
    fn needs_build(&self, value: &str, changed: &Changes) -> bool {
        let reads = match self.reads.get(value) {
            Some(Some(reads)) if self.references.contains_key(value) => reads,
            _ => return true,
        };
        let touches = |p: &PathBuf| changed.configs.contains(p) || reads.touched_by(p);
        changed.paths.iter().any(touches) || self.pending.iter().any(touches)
    }

    /// Learns what the images built this cycle read now.
    fn learn_reads(&mut self, built: &[String]) {
        for value in built {
            let reads = self.packages.get(value).and_then(|dir| super::reads::reads(dir));
            self.reads.insert(value.clone(), reads);
        }
    }
}

/// The changes a cycle follows: the paths of a burst and where the configuration is read from.
pub struct Changes<'a> {
    pub paths: &'a BTreeSet<PathBuf>,
    pub configs: &'a [PathBuf],
}

/// What one cycle did.
#[derive(Default, Debug)]
pub struct Report {
    /// The `ko://` values whose image was built (all of them on the first cycle).
    pub built: Vec<String>,
    /// Those of `built` whose image came out as before.
    pub same: Vec<String>,
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
    /// A `--dry-run`: what was applied and pruned was not stored.
    pub dry_run: bool,
}

/// An object's identity: its API group and kind, namespace and name.
fn identity(object: &Object) -> String {
    let ns = object.namespace.as_deref().unwrap_or("");
    format!("{}/{}/{}/{}", object.gvk.group, object.gvk.kind, ns, object.name)
}

/// Whether `a` and `b` may be one object in the cluster: the same group, kind and name, and
/// the same namespace or one left unwritten. Without the cluster's word on the kind's scope
/// and the default namespace, `namespace: team` added to an object applied into `-n team`
/// (or a stray namespace on a cluster-scoped kind) must not make it look gone.
fn may_be_one(a: &Object, b: &Object) -> bool {
    a.gvk.group == b.gvk.group
        && a.gvk.kind == b.gvk.kind
        && a.name == b.name
        && (a.namespace.is_none() || b.namespace.is_none() || a.namespace == b.namespace)
}

/// Whether kubectl's own `--prune` is among the flags after `--`: it deletes whatever the
/// objects piped to it leave out, so it must be given them all.
fn kubectl_prunes(flags: &[String]) -> bool {
    flags.iter().any(|f| f == "--prune" || (f.starts_with("--prune=") && f != "--prune=false"))
}

/// Runs one cycle: the first (`changed` is `None`) builds every image, a later one only those
/// `changed` touches. After an error the changes are kept, so the next cycle builds what they
/// touched as well as its own.
pub async fn run(
    inputs: &Inputs<'_>,
    target: &Target<'_>,
    state: &mut State,
    changed: Option<&Changes<'_>>,
) -> Result<Report, Error> {
    state.cycles += 1;
    let outcome = run_cycle(inputs, target, state, changed).await;
    match &outcome {
        Ok(report) => {
            state.learn_reads(&report.built);
            state.pending.clear();
        }
        Err(_) => state.pending.extend(changed.iter().flat_map(|c| c.paths.iter().cloned())),
    }
    outcome
}

async fn run_cycle(
    inputs: &Inputs<'_>,
    target: &Target<'_>,
    state: &mut State,
    changed: Option<&Changes<'_>>,
) -> Result<Report, Error> {
    let manifests = resolve::load(inputs.files)?;
    let values: BTreeSet<&str> = manifests.iter().flat_map(|m| m.references()).map(|r| r.value).collect();
    let reuse: HashMap<String, String> = values
        .iter()
        .filter(|v| changed.is_some_and(|c| !state.needs_build(v, c)))
        .map(|v| (v.to_string(), state.references[*v].clone()))
        .collect();
    let mut seen = Vec::new();
    let result = resolve::publish_references_seen(&manifests, inputs.publish, inputs.build, &reuse, &mut seen).await;
    // As the file system spells them: `go list` spells a directory through `$PWD`, which may
    // go through a symlink, while the watcher reports (and the working directory is) the
    // resolved path.
    state.packages.extend(seen.into_iter().map(|(value, dir)| (value, std::fs::canonicalize(&dir).unwrap_or(dir))));
    let replacements = result?;
    let mut report = Report { images: replacements.len(), ..Report::default() };
    report.built = values.iter().filter(|v| !reuse.contains_key(**v)).map(|v| v.to_string()).collect();
    report.same = report.built.iter().filter(|v| state.references.get(*v) == replacements.get(*v)).cloned().collect();
    match target {
        Target::Print => {
            let rendered = manifests.iter().map(|m| m.rendered(&replacements)).collect::<Result<Vec<_>, _>>()?;
            // Each stream ends with `---`, which separates it from the next.
            resolve::print_joined(&rendered);
            report.printed = true;
        }
        Target::Apply { .. } => {
            let texts: Vec<String> = manifests.iter().map(|m| m.render(&replacements)).collect::<Result<_, _>>()?;
            let objects = apply::objects_of(&manifests, &texts)?;
            apply_changed(state, target, objects, &mut report).await?;
        }
    }
    state.references = replacements;
    Ok(report)
}

/// Applies the objects whose content changed, then reports (and with `prune` deletes) the ones
/// that are gone.
async fn apply_changed(
    state: &mut State,
    target: &Target<'_>,
    objects: Vec<Object>,
    report: &mut Report,
) -> Result<(), Error> {
    let Target::Apply { kube, options, prune, kubectl } = target else { return Ok(()) };
    if objects.is_empty() {
        // As a plain apply (and kubectl) refuses it: emptied files or a selector that matches
        // nothing any more is far likelier a moment of an edit than a wish to delete it all.
        let detail = "no objects passed to apply; nothing was applied or deleted, and the next change that brings objects back goes on";
        return Err(Error::usage("-f", detail));
    }
    let current: Vec<(String, String, Object)> =
        objects.into_iter().map(|o| (identity(&o), serde_json::to_string(&o.value).unwrap_or_default(), o)).collect();
    let changed: Vec<Object> = current
        .iter()
        .filter(|(id, content, _)| state.applied.get(id).is_none_or(|(c, _)| c != content))
        .map(|(_, _, o)| o.clone())
        .collect();
    let gone: Vec<Object> = state
        .applied
        .values()
        .filter(|(_, applied)| !current.iter().any(|(_, _, o)| may_be_one(o, applied)))
        .map(|(_, o)| o.clone())
        .collect();
    report.gone = gone.iter().map(Object::display).collect();
    // kubectl's own --prune (after --) deletes what is gone, given every object.
    let kubectl_prune = kubectl.as_deref().is_some_and(kubectl_prunes);
    let prune = if *prune || kubectl_prune { gone.as_slice() } else { &[] };
    if !changed.is_empty() || !prune.is_empty() {
        match kubectl {
            Some(flags) if kubectl_prune => {
                let all: Vec<Object> = current.iter().map(|(_, _, o)| o.clone()).collect();
                pipe(kube, flags, &all).await?
            }
            Some(flags) => pipe(kube, flags, &changed).await?,
            None => send_to_cluster(state, kube, *options, &changed, prune).await?,
        }
    }
    report.applied = changed.iter().map(Object::display).collect();
    report.pruned = prune.iter().map(Object::display).collect();
    report.dry_run = options.dry_run != cluster::DryRun::None;
    // Reported once; without --prune a gone object is no longer this watch's business. One
    // whose namespace was written or dropped is known by its new spelling.
    let respelled = |id: &String, applied: &Object| current.iter().any(|(c, _, o)| c != id && may_be_one(o, applied));
    state.applied.retain(|id, (_, o)| !respelled(id, o));
    gone.iter().for_each(|o| drop(state.applied.remove(&identity(o))));
    for (id, content, object) in current {
        state.applied.insert(id, (content, object));
    }
    Ok(())
}

/// Hands the objects to `kubectl apply -f -` as one JSON list.
async fn pipe(kube: &KubeArgs, flags: &[String], objects: &[Object]) -> Result<(), Error> {
    if objects.is_empty() {
        return Ok(());
    }
    let items: Vec<&serde_json::Value> = objects.iter().map(|o| &o.value).collect();
    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
    let text = serde_json::to_vec(&list).expect("a JSON value serializes");
    super::super::kubectl::pipe("apply", kube, flags, &text).await
}

/// Applies and deletes through the watch's own connection, made again after a failure (the
/// kubeconfig or the cluster may have been fixed).
async fn send_to_cluster(
    state: &mut State,
    kube: &KubeArgs,
    options: ApplyOptions,
    changed: &[Object],
    prune: &[Object],
) -> Result<(), Error> {
    let cluster = match &state.cluster {
        Some(cluster) => cluster,
        None => state.cluster.insert(cluster::connect(kube, Environment::process()).await?),
    };
    if let Err(e) = send(cluster, changed, prune, options).await {
        state.cluster = None;
        return Err(e.into());
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
        let mut kinds = cluster::prepare(cluster, changed, false).await?;
        cluster::apply(cluster, &mut kinds, changed, options).await?;
    }
    if !prune.is_empty() {
        // A dry run deletes nothing either (kubectl's prune says what it would delete).
        // A watch does not wait on finalizers: the next cycle may come first.
        let delete = cluster::DeleteOptions { ignore_not_found: true, dry_run: options.dry_run, wait: false };
        cluster::delete(cluster, &mut cluster::KindCache::default(), prune, delete).await?;
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

    #[test]
    fn an_unwritten_namespace_may_be_any_and_kubectl_prune_is_seen() {
        let objects = cluster::objects(
            "t.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: z}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n",
        )
        .unwrap();
        assert!(may_be_one(&objects[0], &objects[1]) && may_be_one(&objects[2], &objects[0]));
        assert!(!may_be_one(&objects[1], &objects[2]), "two written namespaces are two objects");
        assert!(!may_be_one(&objects[0], &objects[3]), "another kind");
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(kubectl_prunes(&flags(&["--prune", "-l", "a=b"])) && kubectl_prunes(&flags(&["--prune=true"])));
        assert!(!kubectl_prunes(&flags(&["--prune=false"])) && !kubectl_prunes(&flags(&["--prune-allowlist=x"])));
    }
}
