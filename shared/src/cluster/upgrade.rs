//! Taking over objects that a client-side `kubectl apply` manages (as `ko apply` leaves them),
//! so that switching from ko to `kubectl ko apply` does not conflict on every field.
//!
//! Client-side apply records its fields under an `Update` entry of the manager
//! `kubectl-client-side-apply`; objects older than server-side apply carry `before-first-apply`.
//! Before our first server-side apply, those fields move into our own `Apply` entry and the
//! client-side entries go, as `kubectl apply --server-side` does for its own manager. This only
//! rewrites `metadata.managedFields`; no field of the object changes.

use serde_json::{Map, Value};

/// Managers whose `Update` entries are merged into ours.
pub const CLIENT_SIDE_MANAGERS: &[&str] = &["kubectl-client-side-apply", "before-first-apply"];

fn text<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// An entry of `manager` for the main resource (not a subresource) made by `operation`.
fn is_entry(entry: &Value, manager: &str, operation: &str) -> bool {
    text(entry, "manager") == manager && text(entry, "operation") == operation && text(entry, "subresource").is_empty()
}

/// Adds every path of `from` to `into`: field sets are tries of objects whose leaves are `{}`.
fn union(into: &mut Value, from: &Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else { return };
    for (key, value) in from {
        match into.get_mut(key) {
            Some(existing) => union(existing, value),
            None => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Moves the fields of one client-side manager into `manager`'s `Apply` entry.
fn merge_manager(entries: &mut Vec<Value>, client_side: &str, manager: &str) {
    let target = match entries.iter().position(|e| is_entry(e, manager, "Apply")) {
        Some(index) => index,
        None => {
            // The most recent client-side entry (entries are sorted newest first) becomes ours.
            let Some(index) = entries.iter().position(|e| is_entry(e, client_side, "Update")) else { return };
            entries[index]["operation"] = Value::from("Apply");
            entries[index]["manager"] = Value::from(manager);
            index
        }
    };
    let api_version = text(&entries[target], "apiVersion").to_string();
    let same_version =
        entries.iter().position(|e| is_entry(e, client_side, "Update") && text(e, "apiVersion") == api_version);
    if let Some(source) = same_version {
        let fields = entries[source].get("fieldsV1").cloned().unwrap_or_default();
        let slot = entries[target].as_object_mut().expect("a managed fields entry is an object");
        let target_fields = slot.entry("fieldsV1").or_insert_with(|| Value::Object(Map::new()));
        union(target_fields, &fields);
    }
    entries.retain(|e| !is_entry(e, client_side, "Update"));
}

/// The manager of `kubectl create`: with `--save-config` (or a later client-side apply, which
/// adds the annotation) its fields are what client-side apply deletes when the file drops them.
pub const CREATE_MANAGER: &str = "kubectl-create";

/// The managed fields with every client-side manager's fields owned by `manager`; `None` when
/// there is nothing to take over. `saved_config`: the object carries client-side apply's
/// last-applied annotation, so that `kubectl create`'s fields are declared ones too.
pub fn upgraded(managed_fields: &[Value], manager: &str, saved_config: bool) -> Option<Vec<Value>> {
    let mut entries = managed_fields.to_vec();
    let create = saved_config.then_some(CREATE_MANAGER);
    for client_side in CLIENT_SIDE_MANAGERS.iter().copied().chain(create) {
        merge_manager(&mut entries, client_side, manager);
    }
    (entries != managed_fields).then_some(entries)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::upgraded;

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> serde_json::Value {
        json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn a_client_side_entry_becomes_ours() {
        let fields =
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}});
        let before = vec![entry("kubectl-client-side-apply", "Update", fields.clone())];
        let after = upgraded(&before, "kubectl-ko", false).unwrap();
        assert_eq!(after, vec![entry("kubectl-ko", "Apply", fields)]);
    }

    #[test]
    fn client_side_fields_join_an_existing_apply_entry() {
        let before = vec![
            entry("kubectl-ko", "Apply", json!({"f:spec": {"f:replicas": {}}})),
            entry("kubectl-client-side-apply", "Update", json!({"f:spec": {"f:paused": {}}, "f:metadata": {}})),
            entry("kube-controller-manager", "Update", json!({"f:status": {}})),
        ];
        let after = upgraded(&before, "kubectl-ko", false).unwrap();
        assert_eq!(
            after,
            vec![
                entry("kubectl-ko", "Apply", json!({"f:spec": {"f:replicas": {}, "f:paused": {}}, "f:metadata": {}})),
                entry("kube-controller-manager", "Update", json!({"f:status": {}})),
            ]
        );
    }

    #[test]
    fn nothing_to_do_without_a_client_side_manager() {
        let before = vec![entry("kubectl-ko", "Apply", json!({})), entry("other", "Update", json!({}))];
        assert_eq!(upgraded(&before, "kubectl-ko", false), None);
        let status = json!({"manager": "kubectl-client-side-apply", "operation": "Update", "subresource": "status"});
        assert_eq!(upgraded(&[status], "kubectl-ko", false), None);
    }

    #[test]
    fn kubectl_create_fields_are_taken_over_only_with_the_saved_config() {
        let fields = json!({"f:data": {"f:b": {}}});
        let before = vec![entry("kubectl-create", "Update", fields.clone())];
        assert_eq!(upgraded(&before, "kubectl-ko", false), None, "a plain create's fields stay its own");
        assert_eq!(upgraded(&before, "kubectl-ko", true).unwrap(), vec![entry("kubectl-ko", "Apply", fields)]);
    }
}
