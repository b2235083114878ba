//! `delete -f`: objects first, then CustomResourceDefinitions, then Namespaces (the reverse of
//! apply's order), one line per object as kubectl prints it, then a wait until each is gone.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject};

use super::apply::{DryRun, KindCache, api_for, namespace_of};
use super::connect::describe_call;
use super::{Cluster, ClusterError, Object};
use crate::output;

/// How long `delete` waits for an object to be gone before it says what it waits for.
const WAIT_NOTICE: Duration = Duration::from_secs(3);

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// How `delete -f` deletes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    pub ignore_not_found: bool,
    pub dry_run: DryRun,
    /// Return only once every deleted object is gone, as kubectl's `--wait` (the default).
    pub wait: bool,
}

/// Deletes every object (everything else, then CustomResourceDefinitions, then Namespaces),
/// printing one line per deleted object as kubectl does; with `wait`, then waits until each
/// is gone (an object with finalizers stays, marked for deletion, until they are done).
pub async fn delete(
    cluster: &Cluster,
    cache: &mut KindCache,
    objects: &[Object],
    options: DeleteOptions,
) -> Result<(), ClusterError> {
    let DeleteOptions { ignore_not_found, dry_run, wait } = options;
    let suffix = dry_run.suffix();
    let rest = objects.iter().filter(|o| !o.is_namespace() && !o.is_crd());
    let ordered: Vec<&Object> =
        rest.chain(objects.iter().filter(|o| o.is_crd())).chain(objects.iter().filter(|o| o.is_namespace())).collect();
    // Kinds a CustomResourceDefinition of the input defines: once it is gone, so are they.
    let defined: Vec<_> = objects.iter().flat_map(Object::defined_kinds).collect();
    let mut failures = 0;
    let mut going = Vec::new();
    for object in ordered {
        if object.generated {
            output::error(format!(
                "{}:{}: the {} has only metadata.generateName; name the object to delete it",
                object.file, object.line, object.gvk.kind
            ));
            failures += 1;
            continue;
        }
        let not_found = || format!("{} {:?} not found", object.kind_name(), object.name);
        let found = cache.lookup(cluster, object).await?;
        // kubectl (1.34) names a namespaced object's namespace: `deleted from NS namespace`.
        let from = found
            .as_ref()
            .and_then(|(_, caps)| namespace_of(cluster, object, caps))
            .map(|namespace| format!(" from {namespace} namespace"))
            .unwrap_or_default();
        let result = match found {
            None if defined.contains(&object.gvk) => Err(not_found()),
            // As kubectl: an error even with --ignore-not-found, for a misspelt kind would
            // otherwise leave its objects behind unnoticed.
            None => {
                output::error(format!(
                    "{}:{}: the cluster at {} does not serve kind {} in {}, so {} cannot be deleted; check the spelling, or whether its CustomResourceDefinition was deleted already",
                    object.file,
                    object.line,
                    cluster.server,
                    object.gvk.kind,
                    object.gvk.api_version(),
                    object.name
                ));
                failures += 1;
                continue;
            }
            Some(_) if dry_run == DryRun::Client => Ok(()),
            Some((resource, caps)) => {
                let api = api_for(cluster, object, &resource, &caps);
                let mut params = DeleteParams::background();
                params.dry_run = dry_run == DryRun::Server;
                match api.delete(&object.name, &params).await {
                    Ok(deleted) => {
                        // Still there (finalizers, or a graceful deletion): the object as it
                        // is now; gone at once: a status.
                        if dry_run == DryRun::None
                            && let Some(live) = deleted.left()
                        {
                            going.push((api, object, live.metadata.uid));
                        }
                        Ok(())
                    }
                    Err(e) if is_not_found(&e) => Err(not_found()),
                    Err(e) => {
                        output::error(format!("{}: {}", object.display(), describe_call(&e)));
                        failures += 1;
                        continue;
                    }
                }
            }
        };
        match result {
            Ok(()) => output::result(format!("{} {:?} deleted{from}{suffix}", object.kind_name(), object.name)),
            Err(_) if ignore_not_found => {}
            Err(message) => {
                output::error(format!("{message} (pass --ignore-not-found to skip objects that do not exist)"));
                failures += 1;
            }
        }
    }
    if wait {
        for (api, object, uid) in &going {
            failures += usize::from(!wait_gone(api, object, uid.as_deref()).await);
        }
    }
    match failures {
        0 => Ok(()),
        count => Err(ClusterError::Failed { count, total: objects.len(), verb: "deleted" }),
    }
}

/// Waits until `object` (the one with `uid`; one made again under its name does not count)
/// is gone, saying once what holds it when that takes a while. False, with the error said,
/// when the cluster cannot be asked.
async fn wait_gone(api: &Api<DynamicObject>, object: &Object, uid: Option<&str>) -> bool {
    let started = tokio::time::Instant::now();
    let mut said = false;
    let mut pause = Duration::from_millis(100);
    loop {
        match api.get_opt(&object.name).await {
            Ok(None) => return true,
            Ok(Some(live)) if uid.is_some() && live.metadata.uid.as_deref() != uid => return true,
            Ok(Some(live)) => {
                if !said && started.elapsed() >= WAIT_NOTICE {
                    said = true;
                    let finalizers = live.metadata.finalizers.unwrap_or_default();
                    let holding = if finalizers.is_empty() {
                        String::new()
                    } else {
                        format!(" (finalizers: {})", finalizers.join(", "))
                    };
                    output::step(format!(
                        "waiting for {} to be gone{holding}; --wait=false does not wait",
                        object.display()
                    ));
                }
            }
            Err(e) if is_not_found(&e) => return true,
            Err(e) => {
                output::error(format!("{}: waiting for it to be gone: {}", object.display(), describe_call(&e)));
                return false;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
