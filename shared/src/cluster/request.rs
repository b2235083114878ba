//! What `apply` and `create` send for an object: the body as kubectl would send it (less what
//! an exported file carries that the server refuses), the strict create request, and the
//! take-over of client-side apply's fields that comes before our first apply.

use std::borrow::Cow;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::Object;
use super::apply::FIELD_MANAGER;
use crate::output;

/// `create` as kubectl makes it: the API server refuses a field the kind does not have
/// (`fieldValidation=Strict`, kubectl's default `--validate=strict`) where it would otherwise
/// drop it with a warning. kube's `PostParams` cannot say so, hence the request by hand.
pub(super) async fn create_strictly(
    api: &Api<DynamicObject>,
    params: &PostParams,
    object: &serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
    let mut request =
        kube::core::Request::new(api.resource_url()).create(params, body).map_err(kube::Error::BuildRequest)?;
    let uri = format!("{}&fieldValidation=Strict", request.uri());
    *request.uri_mut() = match uri.parse() {
        Ok(parsed) => parsed,
        Err(invalid) => return Err(kube::Error::HttpError(From::from(invalid))),
    };
    api.clone().into_client().request(request).await
}

/// Moves the fields a client-side `kubectl apply` owns to our field manager (see
/// `upgrade.rs`), so the apply that follows does not conflict with them. The patch names the
/// resourceVersion it was computed from: if the object changed meanwhile, it is computed again.
/// Returns the object as it was read (`None`: it does not exist), and the resourceVersion our
/// own patch moved it to, when there was one.
pub(super) async fn take_over_client_side_fields(
    api: &Api<DynamicObject>,
    object: &Object,
) -> Result<(Option<DynamicObject>, Option<String>), kube::Error> {
    let mut read = None;
    for _ in 0..3 {
        let Some(live) = api.get_opt(&object.name).await? else { return Ok((None, None)) };
        let managed =
            serde_json::to_value(live.metadata.managed_fields.clone().unwrap_or_default()).unwrap_or_default();
        let entries = managed.as_array().map(Vec::as_slice).unwrap_or_default();
        let saved_config = live
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        let Some(upgraded) = super::upgrade::upgraded(entries, FIELD_MANAGER, saved_config) else {
            return Ok((Some(live), None));
        };
        output::detail(format!("{}: taking over the fields of client-side kubectl apply", object.display()));
        let patch = serde_json::json!({
            "metadata": {"managedFields": upgraded, "resourceVersion": live.metadata.resource_version}
        });
        read = Some(live);
        match api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(patched) => return Ok((read, patched.metadata.resource_version)),
            // Changed since it was read: read it again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((read, None))
}

/// What an apply sends: the object as written, less what a file exported with `kubectl get -o
/// yaml` carries that an apply may not (`managedFields`, which the server refuses). A
/// resourceVersion that pinned the object as it was before our own take-over (see above)
/// follows it to the version that take-over made, as the user's pin meant "as it is now".
/// For an object that does not exist (an export restored, or applied to another cluster), the
/// exported `uid` and `resourceVersion` go, as kubectl's apply creates such an object without
/// them: kept, they make the server refuse the apply as a conflict with nothing.
pub(super) fn apply_body<'a>(
    object: &'a Object,
    before: Option<&DynamicObject>,
    moved_to: Option<String>,
) -> Cow<'a, Value> {
    let metadata = &object.value["metadata"];
    let pinned = metadata["resourceVersion"].as_str();
    let repin = match (pinned, before.and_then(|b| b.metadata.resource_version.as_deref()), moved_to) {
        (Some(pinned), Some(read), Some(moved)) if pinned == read => Some(moved),
        _ => None,
    };
    let exported = before.is_none() && (metadata.get("uid").is_some() || pinned.is_some());
    if metadata.get("managedFields").is_none() && repin.is_none() && !exported {
        return Cow::Borrowed(&object.value);
    }
    let mut value = object.value.clone();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        if let Some(moved) = repin {
            metadata.insert("resourceVersion".into(), Value::String(moved));
        }
        if exported {
            metadata.remove("uid");
            metadata.remove("resourceVersion");
        }
    }
    Cow::Owned(value)
}

/// What a create sends: the object less a `resourceVersion`, which kubectl's create clears
/// (the server refuses one), so that a file exported with `kubectl get -o yaml` creates as
/// with kubectl.
pub(super) fn create_body(object: &Object) -> Cow<'_, Value> {
    if object.value["metadata"].get("resourceVersion").is_none() {
        return Cow::Borrowed(&object.value);
    }
    let mut value = object.value.clone();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    Cow::Owned(value)
}
