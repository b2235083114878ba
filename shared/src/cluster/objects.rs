//! Kubernetes objects read from (resolved) YAML: one per document, lists expanded,
//! each remembering the file and line it came from.

use kube::core::GroupVersionKind;
use serde_json::Value;

use super::ClusterError;
use crate::yaml::documents;

#[derive(Debug, Clone)]
pub struct Object {
    pub value: Value,
    pub file: String,
    pub line: usize,
    pub gvk: GroupVersionKind,
    /// `metadata.name`, or for an object named by the server, its `metadata.generateName`.
    pub name: String,
    /// Named by the server from `generateName` (only `create` can send it).
    pub generated: bool,
    pub namespace: Option<String>,
}

impl Object {
    fn new(value: Value, file: &str, line: usize) -> Result<Object, ClusterError> {
        let fail = |detail: &str| ClusterError::NotObject { file: file.to_string(), line, detail: detail.to_string() };
        let text = |key: &str| value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let api_version = text("apiVersion")
            .ok_or_else(|| fail("the document has no apiVersion; every object needs apiVersion and kind"))?;
        let kind =
            text("kind").ok_or_else(|| fail("the document has no kind; every object needs apiVersion and kind"))?;
        let metadata = value.get("metadata");
        let field = |key: &str| {
            metadata.and_then(|m| m.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
        };
        // `name: 1` or `namespace: 2024` are numbers to YAML: taken for no name or namespace,
        // the object would go to another (-n's namespace, say), so they are refused.
        let string = |key: &str| match metadata.and_then(|m| m.get(key)) {
            Some(other) if !other.is_null() && !other.is_string() => {
                Err(fail(&format!("the {kind}'s metadata.{key} {other} is not a string; quote it")))
            }
            _ => Ok(field(key)),
        };
        let (name, generated) = match string("name")? {
            Some(name) => (name, false),
            None => match field("generateName") {
                Some(prefix) => (prefix, true),
                None => return Err(fail(&format!("the {kind} has no metadata.name"))),
            },
        };
        let namespace = string("namespace")?;
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let gvk = GroupVersionKind { group, version, kind };
        Ok(Object { value, file: file.to_string(), line, gvk, name, generated, namespace })
    }

    /// How kubectl names the object in its output: `deployment.apps/hello`.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind_name(), self.name)
    }

    /// `deployment.apps`, `configmap`.
    pub fn kind_name(&self) -> String {
        let kind = self.gvk.kind.to_lowercase();
        if self.gvk.group.is_empty() { kind } else { format!("{kind}.{}", self.gvk.group) }
    }

    pub fn is_namespace(&self) -> bool {
        self.gvk.group.is_empty() && self.gvk.kind == "Namespace"
    }

    pub fn is_crd(&self) -> bool {
        self.gvk.group == "apiextensions.k8s.io" && self.gvk.kind == "CustomResourceDefinition"
    }

    /// The kinds a CustomResourceDefinition object defines (one per served version).
    /// Whether this CustomResourceDefinition makes its kinds cluster-scoped (`spec.scope`).
    pub fn defines_cluster_scoped(&self) -> bool {
        self.is_crd() && self.value["spec"]["scope"].as_str() == Some("Cluster")
    }

    pub fn defined_kinds(&self) -> Vec<GroupVersionKind> {
        if !self.is_crd() {
            return Vec::new();
        }
        let spec = &self.value["spec"];
        let group = spec["group"].as_str().unwrap_or_default();
        let kind = spec["names"]["kind"].as_str().unwrap_or_default();
        let versions = spec["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
        versions
            .iter()
            .filter(|v| v["served"].as_bool() != Some(false))
            .filter_map(|v| v["name"].as_str())
            .map(|version| GroupVersionKind { group: group.into(), version: version.into(), kind: kind.into() })
            .collect()
    }
}

/// A YAML error of one document in the user's words: how many lines into the document it is,
/// and what is wrong (at which column), without the parser's snippet and option names.
fn plain_error(error: &serde_saphyr::Error) -> (usize, String) {
    let mut message = error.without_snippet().render_with_formatter(&serde_saphyr::UserMessageFormatter);
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let message = message.replace("is not a finite number", "is not a finite number, which JSON cannot hold");
    let message = match error.without_snippet() {
        serde_saphyr::Error::Budget { breach: serde_saphyr::budget::BudgetBreach::Depth { .. }, .. } => format!(
            "nested deeper than {MAX_DEPTH} levels, more than `kubectl ko apply` can read back from the API server; pipe `kubectl ko resolve` into `kubectl apply -f -` for such objects"
        ),
        _ => message,
    };
    match error.location() {
        Some(location) => (
            usize::try_from(location.line()).unwrap_or(1).saturating_sub(1),
            format!("column {}: {message}", location.column()),
        ),
        None => (0, message),
    }
}

/// How deep an object may nest. The API server's answer to an apply is read back (and JSON
/// readers stop at 128 levels), so an object deeper than this would be applied and then
/// reported as failed: it is refused before anything is sent.
pub const MAX_DEPTH: usize = 120;

/// What one document may hold. The parser's defaults are made for untrusted input (nesting to
/// 64, 250,000 nodes, keys of 1,024 characters, at most ten aliases per anchor) and refuse
/// what kubectl applies: a `List` of a cluster's objects, a deeply nested custom resource, a
/// label set named once and used by many objects. Here objects nest to [`MAX_DEPTH`], keys
/// are as long as `resolve` takes them, and lists may hold millions of nodes; the expansion
/// of aliases stays bounded (a million replayed events), so a "billion laughs" is an error.
fn limits() -> Option<serde_saphyr::Budget> {
    serde_saphyr::budget! {
        max_depth: MAX_DEPTH,
        flow_nesting_limit: MAX_DEPTH,
        simple_key_max_lookahead: crate::yaml::MAX_KEY_LOOKAHEAD,
        max_nodes: 10_000_000,
        max_events: 40_000_000,
        max_total_scalar_bytes: usize::MAX,
        enforce_alias_anchor_ratio: false,
    }
}

/// The stack a file's documents are read on: the deserializer recurses once per level of nesting, with
/// frames of up to some 25 KiB (unoptimized), so [`MAX_DEPTH`] levels need more than a
/// thread's usual 2 MiB. Only what is touched is committed.
const DEEP_STACK: usize = 64 << 20;

/// Runs `read` on a thread of its own with a [`DEEP_STACK`].
fn on_a_deep_stack<T: Send>(read: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().name("yaml".into()).stack_size(DEEP_STACK);
        let handle = thread.spawn_scoped(scope, read).expect("a thread to read YAML on");
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The objects of one file, in order; null documents are skipped.
pub fn objects(file: &str, text: &str) -> Result<Vec<Object>, ClusterError> {
    // The first error in the file's order, whether the YAML or the object is wrong.
    on_a_deep_stack(|| objects_on_this_stack(file, text, true)).map(|(found, _)| found)
}

/// The objects of one file, in order, and why each document that is valid YAML but no
/// Kubernetes object (no apiVersion, kind or name; not a mapping) is not one. YAML that does
/// not parse is the error.
pub fn objects_and_rejected(file: &str, text: &str) -> Result<(Vec<Object>, Vec<ClusterError>), ClusterError> {
    // One thread for all the file's documents.
    on_a_deep_stack(|| objects_on_this_stack(file, text, false))
}

/// [`objects_and_rejected`], read on the calling thread's stack; `strict`, the first document
/// that is no object is the error.
fn objects_on_this_stack(
    file: &str,
    text: &str,
    strict: bool,
) -> Result<(Vec<Object>, Vec<ClusterError>), ClusterError> {
    let mut found = Vec::new();
    let mut rejected = Vec::new();
    let parts = documents(text).map_err(|e| ClusterError::NotObject {
        file: file.to_string(),
        line: e.line,
        detail: format!("invalid YAML: {}", e.message),
    })?;
    for (line, source) in parts {
        // YAML 1.1 numbers, as kubectl reads them: `defaultMode: 0644` is octal, 420. A key
        // given twice keeps its last value, as kubectl's (and ko's resolve's) decoder does.
        let options = serde_saphyr::options! {
            legacy_octal_numbers: true,
            duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
            budget: limits(),
        };
        let value = serde_saphyr::from_str_with_options::<Value>(source, options).map_err(|e| {
            // The document's text may start before its first node (`---`, comments).
            let offset = source.as_ptr() as usize - text.as_ptr() as usize;
            let first_line = text[..offset].matches('\n').count() + 1;
            let (at, detail) = plain_error(&e);
            ClusterError::NotObject {
                file: file.to_string(),
                line: first_line + at,
                detail: format!("invalid YAML: {detail}"),
            }
        })?;
        match value {
            Value::Null => {}
            // As kubectl decodes them: any object with an `items` sequence is a list
            // (`kind: List`, `ConfigMapList`, what `kubectl get -o yaml` prints).
            Value::Object(_)
                if value.get("kind").and_then(Value::as_str) == Some("List")
                    || value.get("items").is_some_and(Value::is_array) =>
            {
                let items = value.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                for item in items {
                    match Object::new(item, file, line) {
                        Ok(object) => found.push(object),
                        Err(e) => rejected.push(e),
                    }
                }
            }
            Value::Object(_) => match Object::new(value, file, line) {
                Ok(object) => found.push(object),
                Err(e) => rejected.push(e),
            },
            _ => rejected.push(ClusterError::NotObject {
                file: file.to_string(),
                line,
                detail: "the document is not a mapping, so it is not a Kubernetes object".into(),
            }),
        }
        if strict && !rejected.is_empty() {
            return Err(rejected.swap_remove(0));
        }
    }
    Ok((found, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_name_the_files_line_in_plain_words() {
        // A key given twice is no error: the last value wins, as with kubectl.
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n  a: \"1\"\n  a: \"2\"\n";
        let found = objects("dup.yaml", text).unwrap();
        assert_eq!(found[1].value["data"], serde_json::json!({"a": "2"}));
        let error = objects("inf.yaml", "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nb: .inf\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "inf.yaml:5: invalid YAML: column 4: value `.inf` is not a finite number, which JSON cannot hold"
        );
    }

    /// What kubectl applies is read: a list of many objects sharing one anchored label set,
    /// nesting deeper than 64, a long JSON key. A "billion laughs" stays an error.
    #[test]
    fn large_and_deep_documents_are_read_as_kubectl_reads_them() {
        let mut list = String::from(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c0, labels: &l {app: web}}}\n",
        );
        for i in 1..=150 {
            list.push_str(&format!("- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c{i}, labels: *l}}}}\n"));
        }
        let found = objects("aliases.yaml", &list).unwrap();
        assert_eq!(found.len(), 151);
        assert_eq!(found[150].value["metadata"]["labels"], serde_json::json!({"app": "web"}));

        let items: Vec<serde_json::Value> = (0..16_000)
            .map(|i| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}, "data": {"a": "x", "b": "y", "c": "z"}}))
            .collect();
        let big = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        assert_eq!(objects("big.json", &big).unwrap().len(), 16_000);

        let deep = |levels: usize| {
            format!(
                "apiVersion: v1\nkind: Thing\nmetadata: {{name: d}}\nspec: {}1{}\n",
                "{a: ".repeat(levels),
                "}".repeat(levels)
            )
        };
        assert!(objects("deep.yaml", &deep(MAX_DEPTH - 1)).is_ok());
        let error = objects("deep.yaml", &deep(MAX_DEPTH)).unwrap_err().to_string();
        assert!(error.starts_with("deep.yaml:4: invalid YAML: column 483: nested deeper than 120 levels"), "{error}");
        let key = "k".repeat(2_000);
        let long = format!(
            "{{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {{\"name\": \"k\"}}, \"data\": {{\"{key}\": \"v\"}}}}"
        );
        assert!(objects("long.json", &long).is_ok());

        let mut laughs = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (level, prev) in
            ["b", "c", "d", "e", "f", "g", "h", "i"].iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            laughs.push_str(&format!("{level}: &{level} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(objects("laughs.yaml", &laughs).is_err());
    }

    #[test]
    fn numbers_are_read_as_kubectl_reads_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - {name: c, configMap: {name: x, defaultMode: 0644}}\n  - {name: s, secret: {secretName: y, defaultMode: 0400}}\n  - {name: d, secret: {secretName: z, defaultMode: 420}}\n  terminationGracePeriodSeconds: 30\n";
        let objects = objects("p.yaml", text).unwrap();
        let volumes = &objects[0].value["spec"]["volumes"];
        assert_eq!(volumes[0]["configMap"]["defaultMode"], serde_json::json!(420));
        assert_eq!(volumes[1]["secret"]["defaultMode"], serde_json::json!(256));
        assert_eq!(volumes[2]["secret"]["defaultMode"], serde_json::json!(420));
        assert_eq!(objects[0].value["spec"]["terminationGracePeriodSeconds"], serde_json::json!(30));
    }

    #[test]
    fn documents_lists_and_nulls() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: x}}\n";
        let found = objects("f.yaml", text).unwrap();
        let names: Vec<_> = found.iter().map(Object::display).collect();
        assert_eq!(names, ["deployment.apps/web", "configmap/a"]);
        assert_eq!(found[1].namespace.as_deref(), Some("x"));
        assert_eq!(found[1].line, 6);
        // Any object with an items sequence is a list, as kubectl decodes it.
        let typed = "apiVersion: v1\nkind: ConfigMapList\nmetadata: {}\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n";
        let names: Vec<_> = objects("l.yaml", typed).unwrap().iter().map(Object::display).collect();
        assert_eq!(names, ["configmap/c"]);
    }

    #[test]
    fn objects_need_a_kind_and_a_name() {
        let error = objects("f.yaml", "a: 1\n---\napiVersion: v1\n").unwrap_err();
        assert!(error.to_string().starts_with("f.yaml:1: the document has no apiVersion"), "{error}");
        let error = objects("f.yaml", "apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert!(error.to_string().contains("has no metadata.name"), "{error}");
        let error = objects("f.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 1}\n").unwrap_err();
        assert!(error.to_string().contains("metadata.name 1 is not a string; quote it"), "{error}");
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 2024}\n";
        let error = objects("f.yaml", text).unwrap_err();
        assert!(error.to_string().contains("metadata.namespace 2024 is not a string; quote it"), "{error}");
        let quoted = objects("f.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: '2024'}\n");
        assert_eq!(quoted.unwrap()[0].namespace.as_deref(), Some("2024"));
    }

    #[test]
    fn crds_name_the_kinds_they_define() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  versions: [{name: v1}, {name: v2}]\n";
        let crd = &objects("c.yaml", text).unwrap()[0];
        let kinds: Vec<_> =
            crd.defined_kinds().into_iter().map(|g| format!("{}/{} {}", g.group, g.version, g.kind)).collect();
        assert_eq!(kinds, ["example.com/v1 Widget", "example.com/v2 Widget"]);
    }
}
