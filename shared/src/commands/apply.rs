//! `kubectl ko apply`: check the objects against the cluster, resolve (build and publish every
//! `ko://` image), then server-side apply the resolved objects. With kubectl flags after `--`,
//! the resolved YAML goes to `kubectl apply -f -` instead. `create` shares all of this.

use crate::cli::{ApplyCommand, DeployArgs};
use crate::cluster::{self, ApplyOptions, DryRun, Object, Verb};
use crate::error::Error;
use crate::yaml::ManifestFile;

use super::{kubectl, resolve, watch};

/// The objects of every file, in order, with the lines of the files as the user wrote them.
pub fn objects_of(manifests: &[ManifestFile], texts: &[String]) -> Result<Vec<Object>, Error> {
    let mut all = Vec::new();
    for (manifest, text) in manifests.iter().zip(texts) {
        all.extend(cluster::objects(manifest.name(), text)?.into_iter().map(|o| as_written(manifest, o)));
    }
    Ok(all)
}

fn as_written(manifest: &ManifestFile, mut object: Object) -> Object {
    object.line = manifest.original_line(object.line);
    object
}

/// The selected objects as written, `ko://` strings still in place: enough to check kinds
/// against the cluster (before any build).
pub fn unresolved_objects(manifests: &[ManifestFile]) -> Result<Vec<Object>, Error> {
    let texts: Vec<String> = manifests.iter().map(|m| m.render(&Default::default())).collect::<Result<_, _>>()?;
    objects_of(manifests, &texts)
}

/// [`unresolved_objects`], with the documents that are no objects set apart (with why)
/// instead of failing the read: what `delete` goes on without, as kubectl does.
pub fn unresolved_objects_and_rejected(
    manifests: &[ManifestFile],
) -> Result<(Vec<Object>, Vec<cluster::ClusterError>), Error> {
    let (mut objects, mut rejected) = (Vec::new(), Vec::new());
    for manifest in manifests {
        let text = manifest.render(&Default::default())?;
        let (found, bad) = cluster::objects_and_rejected(manifest.name(), &text)?;
        objects.extend(found.into_iter().map(|o| as_written(manifest, o)));
        rejected.extend(bad.into_iter().map(|e| match e {
            cluster::ClusterError::NotObject { file, line, detail } => {
                cluster::ClusterError::NotObject { file, line: manifest.original_line(line), detail }
            }
            other => other,
        }));
    }
    Ok((objects, rejected))
}

/// What `apply` and `create` are given: their shared flags and what to send.
pub struct Deploy<'a> {
    pub args: &'a DeployArgs,
    pub options: ApplyOptions,
}

impl Deploy<'_> {
    fn verb(&self) -> &'static str {
        match self.options.verb {
            Verb::Apply => "apply",
            Verb::Create => "create",
        }
    }

    /// The flags for kubectl: ours that kubectl shares, then the ones after `--`.
    fn kubectl_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.options.dry_run != DryRun::None {
            flags.push(format!("--dry-run={}", self.args.dry_run));
        }
        // Only when given: kubectl takes it with --server-side alone.
        if self.options.force_conflicts == Some(true) {
            flags.push("--force-conflicts".into());
        }
        flags.extend(self.args.kubectl_args.iter().cloned());
        flags
    }
}

/// Resolves, then applies or creates every object (or hands the YAML to kubectl).
pub async fn deploy(deploy: Deploy<'_>) -> Result<(), Error> {
    let verb = deploy.verb();
    let args = deploy.args;
    let manifests = resolve::load(&args.files)?;
    if !args.kubectl_args.is_empty() {
        kubectl::program(&format!("`kubectl ko {verb}` with flags after --"))?;
        let replacements = resolve::publish_references(&manifests, &args.publish, &args.build).await?;
        let rendered = manifests.iter().map(|m| m.rendered(&replacements)).collect::<Result<Vec<_>, _>>()?;
        let mut yaml = Vec::new();
        resolve::write_joined(&rendered, &mut yaml).expect("writing into memory cannot fail");
        return kubectl::pipe(verb, &args.kube, &deploy.kubectl_flags(), &yaml).await;
    }
    let planned = unresolved_objects(&manifests)?;
    if planned.is_empty() {
        // As kubectl: a selector that matches nothing, or empty files, is not a success.
        let files = args.files.filenames().join(", ");
        let detail = format!("no objects passed to {verb} (in {files}); check the files and the --selector");
        return Err(Error::usage("-f", detail));
    }
    let cluster = cluster::connect(&args.kube, crate::settings::Environment::process()).await?;
    let mut kinds = cluster::prepare(&cluster, &planned, false).await?;

    let texts = resolve::resolve(&manifests, &args.publish, &args.build).await?;
    let objects = objects_of(&manifests, &texts)?;
    cluster::apply(&cluster, &mut kinds, &objects, deploy.options).await?;
    Ok(())
}

/// Reads `--dry-run`.
pub fn dry_run(value: &str) -> Result<DryRun, Error> {
    DryRun::parse(value).map_err(|detail| Error::usage("--dry-run", detail))
}

pub async fn run(command: ApplyCommand) -> Result<(), Error> {
    let dry_run = dry_run(&command.deploy.dry_run)?;
    let options = ApplyOptions { verb: Verb::Apply, force_conflicts: command.force_conflicts, dry_run };
    let args = &command.deploy;
    if command.watch.watch {
        let deploy = Deploy { args, options };
        let kubectl = if args.kubectl_args.is_empty() {
            None
        } else {
            if command.prune {
                return Err(Error::usage(
                    "--prune",
                    "cannot delete through kubectl (flags after --); drop --prune or the flags after --",
                ));
            }
            kubectl::program("`kubectl ko apply --watch` with flags after --")?;
            Some(deploy.kubectl_flags())
        };
        let inputs = watch::Inputs { files: &args.files, publish: &args.publish, build: &args.build };
        let target = watch::Target::Apply { kube: &args.kube, options, prune: command.prune, kubectl };
        return watch::run(inputs, target).await;
    }
    if command.prune {
        return Err(Error::usage(
            "--prune",
            "prunes what a --watch applied, so it needs --watch; for kubectl's prune, pass it after --: kubectl ko apply -f DIR -- --prune -l LABEL=VALUE",
        ));
    }
    deploy(Deploy { args, options }).await
}
