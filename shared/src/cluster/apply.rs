//! Server-side apply and create of objects, in the order that lets one `-f` of a mixed
//! directory work: Namespaces, then CustomResourceDefinitions (waited on until established),
//! then everything else in input order; and what apply and delete share (the kinds' lookup,
//! the dry-run modes).

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use serde_json::Value;

use super::connect::describe_call;
use super::request::{apply_body, create_body, create_strictly, take_over_client_side_fields};
use super::{Cluster, ClusterError, Object};
use crate::output;

/// The field manager our applies own fields as.
pub const FIELD_MANAGER: &str = "kubectl-ko";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a kind an established CustomResourceDefinition defines may take to be served.
const SERVED_TIMEOUT: Duration = Duration::from_secs(15);

/// What is sent for each object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verb {
    /// Server-side apply (`kubectl apply --server-side`).
    #[default]
    Apply,
    /// Create, failing on objects that exist (`kubectl create`).
    Create,
}

/// `--dry-run`, as kubectl spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DryRun {
    #[default]
    None,
    /// The API server checks each object without storing it.
    Server,
    /// Nothing is sent: the objects are only checked here (kinds served, namespaces).
    Client,
}

impl DryRun {
    /// Reads a `--dry-run` value; the error says which values there are.
    pub fn parse(value: &str) -> Result<DryRun, String> {
        match value {
            "none" | "false" => Ok(DryRun::None),
            "server" => Ok(DryRun::Server),
            "client" | "true" => Ok(DryRun::Client),
            other => Err(format!(
                "{other:?} is not a dry-run mode; use client (check here, send nothing), server (the API server checks without storing) or none"
            )),
        }
    }

    pub(super) fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Server => " (server dry run)",
            DryRun::Client => " (dry run)",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    pub verb: Verb,
    /// `--force-conflicts` as given: forced unless `Some(false)`; passed to kubectl when `Some(true)`.
    pub force_conflicts: Option<bool>,
    pub dry_run: DryRun,
}

/// The resource behind each kind, looked up once per run.
#[derive(Default)]
pub struct KindCache {
    known: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
    /// Kinds waited for once already ([`wait_served`]): not waited for again.
    waited: std::collections::HashSet<GroupVersionKind>,
}

fn is_missing(error: &kube::Error) -> bool {
    match error {
        kube::Error::Discovery(_) => true,
        kube::Error::Api(status) => status.code == 404,
        _ => false,
    }
}

impl KindCache {
    /// The resource for a kind; `None` when the cluster does not serve it (yet).
    pub(super) async fn lookup(
        &mut self,
        cluster: &Cluster,
        object: &Object,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, ClusterError> {
        if let Some(found) = self.known.get(&object.gvk) {
            return Ok(Some(found.clone()));
        }
        match pinned_kind(&cluster.client, &object.gvk).await {
            Ok(found) => {
                self.known.insert(object.gvk.clone(), found.clone());
                Ok(Some(found))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(ClusterError::Api { name: object.display(), detail: describe_call(&e) }),
        }
    }
}

/// The namespace an object is in: its own, else the context's; `None` for a cluster-scoped kind.
pub(super) fn namespace_of<'a>(cluster: &'a Cluster, object: &'a Object, caps: &ApiCapabilities) -> Option<&'a str> {
    match caps.scope {
        Scope::Cluster => None,
        Scope::Namespaced => Some(object.namespace.as_deref().unwrap_or(&cluster.namespace)),
    }
}

pub(super) fn api_for(
    cluster: &Cluster,
    object: &Object,
    resource: &ApiResource,
    caps: &ApiCapabilities,
) -> Api<DynamicObject> {
    match namespace_of(cluster, object, caps) {
        None => Api::all_with(cluster.client.clone(), resource),
        Some(namespace) => Api::namespaced_with(cluster.client.clone(), namespace, resource),
    }
}

/// Checks every object against the cluster before anything is built or changed: its kind must
/// be served (or defined by a CustomResourceDefinition among the objects), and a namespaced
/// object's namespace must agree with `-n` (a cluster-scoped one's means nothing, as to
/// kubectl). With `unserved_kinds_ok` (delete), a kind the cluster does not serve is left to
/// the deletion, which fails its objects (or, when a CustomResourceDefinition of the input
/// defines it, counts them as not found) and goes on with the rest.
pub async fn prepare(
    cluster: &Cluster,
    objects: &[Object],
    unserved_kinds_ok: bool,
) -> Result<KindCache, ClusterError> {
    let defined: Vec<GroupVersionKind> = objects.iter().flat_map(Object::defined_kinds).collect();
    // Kinds not served yet take their scope from the CustomResourceDefinition in the input.
    let defined_cluster_scoped: Vec<GroupVersionKind> =
        objects.iter().filter(|o| o.defines_cluster_scoped()).flat_map(Object::defined_kinds).collect();
    let mut cache = KindCache::default();
    // Every object is looked at, so that all that are wrong are named at once, as kubectl
    // names them; nothing is sent while any is.
    let mut refused = Vec::new();
    for object in objects {
        let found = cache.lookup(cluster, object).await?;
        let cluster_scoped = match &found {
            Some((_, caps)) => caps.scope == Scope::Cluster,
            None => defined_cluster_scoped.contains(&object.gvk),
        };
        if let (Some(flag), Some(own)) = (&cluster.namespace_flag, &object.namespace)
            && flag != own
            && !cluster_scoped
        {
            refused.push(ClusterError::NamespaceMismatch {
                file: object.file.clone(),
                line: object.line,
                object: own.clone(),
                flag: flag.clone(),
            });
        } else if found.is_none() && !defined.contains(&object.gvk) && !unserved_kinds_ok {
            refused.push(ClusterError::UnknownKind {
                file: object.file.clone(),
                line: object.line,
                kind: object.gvk.kind.clone(),
                api_version: object.gvk.api_version(),
                server: cluster.server.clone(),
            });
        }
    }
    if refused.len() > 1 {
        let count = refused.len();
        refused.iter().for_each(|e| crate::output::error(e.to_string()));
        return Err(ClusterError::Refused { count, total: objects.len() });
    }
    if let Some(only) = refused.pop() {
        return Err(only);
    }
    Ok(cache)
}

/// What became of an object, in kubectl's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }

    /// An apply's outcome from the object before (`None`: it did not exist) and after. Only
    /// the bookkeeping may differ in an unchanged object: an apply that owns no field (a bare
    /// Namespace) still rewrites `managedFields`, and with it the resourceVersion.
    fn of_apply(before: Option<&DynamicObject>, after: &DynamicObject) -> Outcome {
        let content = |object: &DynamicObject| {
            let mut object = object.clone();
            object.metadata.resource_version = None;
            object.metadata.managed_fields = None;
            serde_json::to_value(object).ok()
        };
        match before {
            None => Outcome::Created,
            Some(before) if content(before) == content(after) => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        }
    }

    /// A client dry run's, where nothing is sent: created when the object does not exist,
    /// unchanged when every field the file sets already has that value (what applying it
    /// would leave as it is, but for fields an earlier apply set that the file drops),
    /// configured otherwise.
    fn of_client_dry_run(file: &Value, live: Option<&DynamicObject>) -> Outcome {
        let Some(live) = live else { return Outcome::Created };
        let live = serde_json::to_value(live).unwrap_or_default();
        let mut wanted = file.clone();
        if let Some(fields) = wanted.as_object_mut() {
            // What the server keeps as it is whatever a file says.
            fields.remove("status");
            if let Some(metadata) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
                for bookkeeping in ["resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"] {
                    metadata.remove(bookkeeping);
                }
            }
        }
        if holds(&live, &wanted) { Outcome::Unchanged } else { Outcome::Configured }
    }
}

/// Whether `live` has every field `wanted` sets, with its value (lists item by item).
fn holds(live: &Value, wanted: &Value) -> bool {
    match (live, wanted) {
        (Value::Object(live), Value::Object(wanted)) => {
            wanted.iter().all(|(key, value)| live.get(key).is_some_and(|l| holds(l, value)))
        }
        (Value::Array(live), Value::Array(wanted)) => {
            live.len() == wanted.len() && live.iter().zip(wanted).all(|(l, w)| holds(l, w))
        }
        (Value::Number(l), Value::Number(w)) => l.as_f64() == w.as_f64(),
        _ => live == wanted,
    }
}

/// Applies or creates one object: the name to print it by (a created object's may be the
/// server's) and what became of it, or `None` when it was skipped.
async fn apply_one(
    cluster: &Cluster,
    cache: &mut KindCache,
    object: &Object,
    options: ApplyOptions,
) -> Result<Option<(String, Outcome)>, ClusterError> {
    if object.generated && options.verb == Verb::Apply {
        return Err(ClusterError::Api {
            name: format!("{}:{}: {}", object.file, object.line, object.display()),
            detail: "an object with metadata.generateName and no name cannot be applied, only created; use kubectl ko create".into(),
        });
    }
    let found = match cache.lookup(cluster, object).await? {
        // Defined by a CustomResourceDefinition of this run that is established, the kind may
        // still be missing from discovery for a moment (a version just added to a CRD that
        // was established already).
        None if options.dry_run == DryRun::None => wait_served(cluster, cache, object).await?,
        found => found,
    };
    let Some((resource, caps)) = found else {
        if options.dry_run == DryRun::None {
            return Err(ClusterError::Api {
                name: format!("{}:{}: {}", object.file, object.line, object.display()),
                detail: format!(
                    "the cluster does not serve {} in {} even after its CustomResourceDefinition was applied; check that the version is served",
                    object.gvk.kind,
                    object.gvk.api_version()
                ),
            });
        }
        if options.dry_run == DryRun::Client {
            // Its kind is not served yet, so neither is the object.
            return Ok(Some((object.display(), Outcome::Created)));
        }
        // In a server dry run the defining CustomResourceDefinition was not created.
        output::warn(format!(
            "{}: skipped in the dry run, since the cluster does not serve {} until its CustomResourceDefinition is applied",
            object.display(),
            object.gvk.kind
        ));
        return Ok(None);
    };
    let api = api_for(cluster, object, &resource, &caps);
    let failed = |e: kube::Error| {
        let mut detail = describe_call(&e);
        if options.verb == Verb::Apply && matches!(&e, kube::Error::Api(s) if s.code == 409) {
            if options.force_conflicts == Some(false) {
                detail.push_str("; drop --force-conflicts=false to take ownership of those fields");
            } else if let Some(version) = object.value["metadata"]["resourceVersion"].as_str() {
                detail.push_str(&format!(
                    "; the file pins metadata.resourceVersion {version:?}: remove it to apply over the object as it is now"
                ));
            }
        }
        if options.verb == Verb::Apply && detail.contains("duplicate entries for key") {
            // Server-side apply merges lists by their keys, so two entries with one key cannot
            // be told apart; client-side apply (ko's) lets them through.
            detail.push_str(
                "; remove the repeated entry, or apply through kubectl's client-side apply as ko does by passing its flags after -- (for example -- --server-side=false)",
            );
        }
        ClusterError::Api { name: format!("{}:{}: {}", object.file, object.line, object.display()), detail }
    };
    if options.dry_run == DryRun::Client {
        let outcome = match options.verb {
            Verb::Create => Outcome::Created,
            Verb::Apply => {
                Outcome::of_client_dry_run(&object.value, api.get_opt(&object.name).await.map_err(failed)?.as_ref())
            }
        };
        return Ok(Some((object.display(), outcome)));
    }
    match options.verb {
        Verb::Create => {
            let params = PostParams {
                dry_run: options.dry_run == DryRun::Server,
                field_manager: Some(FIELD_MANAGER.to_string()),
            };
            // The object as written: a misspelt metadata key must reach the server's strict
            // check, which kube's typed metadata would drop on the way.
            let created = create_strictly(&api, &params, &create_body(object)).await.map_err(failed)?;
            if let Some(name) = created.metadata.name.filter(|_| object.generated) {
                return Ok(Some((format!("{}/{name}", object.kind_name()), Outcome::Created)));
            }
            Ok(Some((object.display(), Outcome::Created)))
        }
        Verb::Apply => {
            let (before, moved_to) = if options.dry_run == DryRun::None {
                take_over_client_side_fields(&api, object).await.map_err(failed)?
            } else {
                (api.get_opt(&object.name).await.map_err(failed)?, None)
            };
            let body = apply_body(object, before.as_ref(), moved_to);
            let mut params = PatchParams::apply(FIELD_MANAGER);
            // As ko's client-side apply, which sets what the manifest says whoever changed it
            // last, unless --force-conflicts=false asks for server-side apply's conflicts.
            if options.force_conflicts != Some(false) {
                params = params.force();
            }
            if options.dry_run == DryRun::Server {
                params = params.dry_run();
            }
            let after = api.patch(&object.name, &params, &Patch::Apply(&*body)).await.map_err(failed)?;
            // A server dry run's answer is the object as it would be stored: told the same way.
            let outcome = Outcome::of_apply(before.as_ref(), &after);
            // As kubectl warns: what was applied goes away with the object (finalizers hold it).
            if after.metadata.deletion_timestamp.is_some() {
                output::warn(format!(
                    "{} is being deleted: what was applied goes away with it once its finalizers are done",
                    object.display()
                ));
            }
            Ok(Some((object.display(), outcome)))
        }
    }
}

/// Asks discovery again for a kind a CustomResourceDefinition of this run defines, until it is
/// served or [`SERVED_TIMEOUT`] has passed; once per kind (its other objects fail at once).
async fn wait_served(
    cluster: &Cluster,
    cache: &mut KindCache,
    object: &Object,
) -> Result<Option<(ApiResource, ApiCapabilities)>, ClusterError> {
    if !cache.waited.insert(object.gvk.clone()) {
        return Ok(None);
    }
    let deadline = tokio::time::Instant::now() + SERVED_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(found) = cache.lookup(cluster, object).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

async fn wait_established(cluster: &Cluster, cache: &mut KindCache, crd: &Object) -> Result<(), ClusterError> {
    let Some((resource, caps)) = cache.lookup(cluster, crd).await? else { return Ok(()) };
    let api = api_for(cluster, crd, &resource, &caps);
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let current = api
            .get(&crd.name)
            .await
            .map_err(|e| ClusterError::Api { name: crd.display(), detail: describe_call(&e) })?;
        let conditions = current.data["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
        let status_of = |kind: &str| conditions.iter().find(|c| c["type"] == kind);
        if status_of("Established").is_some_and(|c| c["status"] == "True") {
            return Ok(());
        }
        // A name another CustomResourceDefinition holds is never accepted: no use waiting.
        if let Some(refused) = status_of("NamesAccepted").filter(|c| c["status"] == "False") {
            return Err(ClusterError::NotEstablished {
                name: crd.name.clone(),
                why: format!(
                    "its names were not accepted: {}",
                    refused["message"].as_str().unwrap_or("no reason given")
                ),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ClusterError::NotEstablished {
                name: crd.name.clone(),
                why: format!("it was not established within {}s", ESTABLISH_TIMEOUT.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Server-side applies (or creates) every object, printing one line per object as kubectl does.
pub async fn apply(
    cluster: &Cluster,
    cache: &mut KindCache,
    objects: &[Object],
    options: ApplyOptions,
) -> Result<(), ClusterError> {
    let namespaces: Vec<&Object> = objects.iter().filter(|o| o.is_namespace()).collect();
    let crds: Vec<&Object> = objects.iter().filter(|o| o.is_crd()).collect();
    let rest: Vec<&Object> = objects.iter().filter(|o| !o.is_namespace() && !o.is_crd()).collect();
    let suffix = options.dry_run.suffix();
    let mut failures = 0;
    for (phase, group) in [namespaces, crds, rest].into_iter().enumerate() {
        let mut applied = Vec::new();
        for object in group {
            match apply_one(cluster, cache, object, options).await {
                Ok(Some((shown, outcome))) => {
                    output::result(format!("{shown} {}{suffix}", outcome.word()));
                    applied.push(object);
                }
                Ok(None) => {}
                Err(e) => {
                    output::error(e.to_string());
                    failures += 1;
                }
            }
        }
        if phase == 1 && options.dry_run == DryRun::None {
            // One that never becomes established fails its own objects later ("not served"),
            // not the others.
            for crd in applied {
                if let Err(e) = wait_established(cluster, cache, crd).await {
                    output::error(e.to_string());
                    failures += 1;
                }
            }
        }
    }
    match failures {
        0 => Ok(()),
        count => Err(ClusterError::Failed {
            count,
            total: objects.len(),
            verb: if options.verb == Verb::Create { "created" } else { "applied" },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    fn object(version: &str, time: &str, data: &str) -> kube::api::DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "x",
                "resourceVersion": version,
                "managedFields": [{"manager": "kubectl-ko", "operation": "Apply", "time": time}],
            },
            "data": {"key": data},
        }))
        .unwrap()
    }

    #[test]
    fn outcomes_are_told_by_the_content_not_the_bookkeeping() {
        let before = object("7", "2026-12-03T18:00:00Z", "a");
        assert_eq!(Outcome::of_apply(None, &before), Outcome::Created);
        assert_eq!(Outcome::of_apply(Some(&before), &before), Outcome::Unchanged);
        let rewritten = object("9", "2026-12-03T18:05:00Z", "a");
        assert_eq!(Outcome::of_apply(Some(&before), &rewritten), Outcome::Unchanged);
        let changed = object("9", "2026-12-03T18:05:00Z", "b");
        assert_eq!(Outcome::of_apply(Some(&before), &changed), Outcome::Configured);
        assert_eq!(Outcome::Unchanged.word(), "unchanged");
        // A client dry run compares what the file sets with what is there.
        let file = |data: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "1"}, "data": {"key": data}, "status": {}});
        assert_eq!(Outcome::of_client_dry_run(&file("a"), None), Outcome::Created);
        assert_eq!(Outcome::of_client_dry_run(&file("a"), Some(&before)), Outcome::Unchanged);
        assert_eq!(Outcome::of_client_dry_run(&file("b"), Some(&before)), Outcome::Configured);
    }
}
