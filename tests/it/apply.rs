//! `kubectl ko apply` and `delete` against a real kube-apiserver (scripts/test-cluster.sh),
//! checked with the real kubectl.

use std::fs;
use std::path::Path;

use crate::util::*;

/// A directory of manifests mixing a Namespace, a CRD and its object, a Deployment (with a
/// volume whose mode is written in octal) and a ConfigMap, all named after `id` so that tests
/// never collide.
fn mixed_config(dir: &Path, id: &str) {
    let group = format!("{id}.example.com");
    let files = [
        (
            "crd.yaml",
            format!(
                "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              image: {{type: string}}
"
            ),
        ),
        (
            "deployment.yaml",
            format!(
                "# the app
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: {id}
spec:
  selector:
    matchLabels: {{app: hello}}
  template:
    metadata:
      labels: {{app: hello}}
    spec:
      containers:
      - name: hello
        image: ko://example.com/hello
      volumes:
      - name: settings
        configMap: {{name: settings, defaultMode: 0644}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {id}
data:
  greeter: ko://example.com/hello/cmd/greeter
"
            ),
        ),
        ("namespace.yaml", format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {id}\n")),
        (
            "widget.yaml",
            format!(
                "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: gadget\n  namespace: {id}\nspec:\n  image: ko://example.com/hello\n"
            ),
        ),
    ];
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap();
    }
}

fn get(args: &[&str], jsonpath: &str) -> String {
    let mut all = vec!["get"];
    all.extend(args);
    let path = format!("jsonpath={jsonpath}");
    all.extend(["-o", &path]);
    // kubectl learns about a new CustomResourceDefinition's kind from discovery, which the
    // API server updates a moment after the CRD is established: retry that case briefly.
    let mut run = kubectl(&all);
    for _ in 0..20 {
        let lagging = ["could not find the requested resource", "doesn't have a resource type"];
        if run.success() || !lagging.iter().any(|l| run.stderr.contains(l)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        run = kubectl(&all);
    }
    run.assert_success();
    run.stdout
}

fn apply(dir: &Path, extra: &[&str], repo: &str) -> Run {
    let mut args = vec!["apply", "-f", dir.to_str().unwrap()];
    args.extend(extra);
    ko(&args).cwd(fixture("hello")).env("KUBECONFIG", kubeconfig()).env("KO_DOCKER_REPO", repo).run()
}

#[test]
fn applies_a_mixed_directory_then_deletes_it() {
    let id = unique_name("apply");
    let repo = unique_repo("apply");
    let dir = tempfile::tempdir().unwrap();
    mixed_config(dir.path(), &id);

    let run = apply(dir.path(), &[], &repo);
    run.assert_success();
    // Namespaces and CRDs first, then the rest in file order.
    assert_eq!(
        run.stdout_lines(),
        [
            format!("namespace/{id} created"),
            format!("customresourcedefinition.apiextensions.k8s.io/widgets.{id}.example.com created"),
            "deployment.apps/hello created".to_string(),
            "configmap/settings created".to_string(),
            format!("widget.{id}.example.com/gadget created"),
        ],
        "{run}"
    );

    let image = get(&["deployment", "hello", "-n", &id], "{.spec.template.spec.containers[0].image}");
    assert!(image.starts_with(&format!("{repo}/hello-124ec4359fcc3b362d8aa16b0f28dd36@sha256:")), "{image}");
    assert_eq!(get(&[&format!("widgets.v1.{id}.example.com"), "gadget", "-n", &id], "{.spec.image}"), image);
    // YAML 1.1's octal, as kubectl reads it: 0644 is 420.
    let mode = get(&["deployment", "hello", "-n", &id], "{.spec.template.spec.volumes[0].configMap.defaultMode}");
    assert_eq!(mode, "420");
    let greeter = get(&["configmap", "settings", "-n", &id], "{.data.greeter}");
    assert!(greeter.starts_with(&format!("{repo}/greeter-")), "{greeter}");
    let managers =
        get(&["deployment", "hello", "-n", &id, "--show-managed-fields"], "{.metadata.managedFields[*].manager}");
    assert!(managers.split_whitespace().any(|m| m == "kubectl-ko"), "{managers}");
    // The pushed image is the one that runs.
    run_image(&image).assert_success();

    // Applying again changes nothing, and says so as kubectl does; a changed object is
    // "configured".
    let version = get(&["deployment", "hello", "-n", &id], "{.metadata.resourceVersion}");
    let again = apply(dir.path(), &[], &repo);
    again.assert_success();
    assert_eq!(again.stdout_lines().len(), 5, "{again}");
    assert!(again.stdout_lines().iter().all(|line| line.ends_with(" unchanged")), "{again}");
    assert_eq!(get(&["deployment", "hello", "-n", &id], "{.metadata.resourceVersion}"), version);
    // So do dry runs, as kubectl's say it.
    for (mode, suffix) in
        [("--dry-run=server", " unchanged (server dry run)"), ("--dry-run=client", " unchanged (dry run)")]
    {
        let dry = apply(dir.path(), &[mode], &repo);
        dry.assert_success();
        assert!(dry.stdout_lines().iter().all(|line| line.ends_with(suffix)), "{dry}");
    }
    kubectl(&["patch", "configmap", "settings", "-n", &id, "--type=merge", "-p", r#"{"data":{"greeter":"x"}}"#])
        .assert_success();
    let changed = apply(dir.path(), &[], &repo);
    changed.assert_success();
    assert!(changed.stdout_lines().contains(&"configmap/settings configured"), "{changed}");
    assert!(changed.stdout_lines().contains(&"deployment.apps/hello unchanged"), "{changed}");

    // No controller removes a namespace's finalizer here: the delete does not wait for it.
    let run = ko(&["delete", "-f", dir.path().to_str().unwrap(), "--wait=false"]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    assert_eq!(
        run.stdout_lines(),
        [
            format!("deployment.apps \"hello\" deleted from {id} namespace"),
            format!("configmap \"settings\" deleted from {id} namespace"),
            format!("widget.{id}.example.com \"gadget\" deleted from {id} namespace"),
            format!("customresourcedefinition.apiextensions.k8s.io \"widgets.{id}.example.com\" deleted"),
            format!("namespace \"{id}\" deleted"),
        ],
        "{run}"
    );
    let gone = kubectl(&["get", "deployment", "hello", "-n", &id]);
    gone.assert_failure();
    assert!(gone.stderr.contains("NotFound") || gone.stderr.contains("not found"), "{gone}");
}

/// One ConfigMap in the default namespace, in its own directory.
fn configmap_dir(name: &str, value: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n");
    fs::write(dir.path().join("cm.yaml"), text).unwrap();
    dir
}

#[test]
fn fields_others_own_are_taken_over_as_ko_does_unless_force_conflicts_is_false() {
    let name = unique_name("conflict");
    let repo = unique_repo("conflict");
    let theirs = configmap_dir(&name, "theirs");
    let run =
        kubectl(&["apply", "--server-side", "--field-manager=someone-else", "-f", theirs.path().to_str().unwrap()]);
    run.assert_success();

    let ours = configmap_dir(&name, "ours");
    let run = apply(ours.path(), &["--force-conflicts=false"], &repo);
    run.assert_failure();
    assert!(
        run.stderr.contains(&format!("configmap/{name}")) && run.stderr.contains("--force-conflicts=false"),
        "{run}"
    );
    assert_eq!(get(&["configmap", &name], "{.data.key}"), "theirs");

    let run = apply(ours.path(), &["--dry-run=server"], &repo);
    run.assert_success();
    assert_eq!(run.stdout_lines(), [format!("configmap/{name} configured (server dry run)")], "{run}");
    assert_eq!(get(&["configmap", &name], "{.data.key}"), "theirs");

    // As ko's client-side apply: what the manifest says wins, whoever set the field.
    apply(ours.path(), &[], &repo).assert_success();
    assert_eq!(get(&["configmap", &name], "{.data.key}"), "ours");
    kubectl(&["patch", "configmap", &name, "--type=merge", "-p", r#"{"data":{"key":"by-hand"}}"#]).assert_success();
    apply(ours.path(), &[], &repo).assert_success();
    assert_eq!(get(&["configmap", &name], "{.data.key}"), "ours");

    let run = ko(&["delete", "-f", ours.path().to_str().unwrap()]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    let run = ko(&["delete", "-f", ours.path().to_str().unwrap()]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    assert!(run.stderr.contains(&format!("configmap \"{name}\" not found")), "{run}");
    let run = ko(&["delete", "--ignore-not-found", "-f", ours.path().to_str().unwrap()])
        .env("KUBECONFIG", kubeconfig())
        .run();
    run.assert_success();
    assert!(run.stdout.is_empty(), "{run}");
    // With a selector, as in kubectl, objects already gone are no error unless asked to be.
    let delete = |extra: &[&str]| {
        let mut args = vec!["delete", "-l", "!absent", "-f", ours.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        ko(&args).env("KUBECONFIG", kubeconfig()).run()
    };
    delete(&[]).assert_success();
    let run = delete(&["--ignore-not-found=false"]);
    run.assert_failure();
    assert!(run.stderr.contains(&format!("configmap \"{name}\" not found")), "{run}");
}

#[test]
fn namespace_flag_and_context_flags_pick_where_objects_go() {
    let name = unique_name("ns");
    let namespace = unique_name("target");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let dir = configmap_dir(&name, "v");
    let run = ko(&["apply", "-f", dir.path().to_str().unwrap(), "-n", &namespace, "--context", "ko-test"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .args(["--kubeconfig", &kubeconfig()])
        .run();
    run.assert_success();
    assert_eq!(get(&["configmap", &name, "-n", &namespace], "{.data.key}"), "v");

    let run = ko(&["apply", "-f", dir.path().to_str().unwrap(), "--context", "no-such-context"])
        .env("KUBECONFIG", kubeconfig())
        .run();
    run.assert_failure();
    assert!(run.stderr.contains("no-such-context"), "{run}");
}

#[test]
fn kubectl_runs_apply_through_the_plugin_lookup() {
    let kubectl_path = kubectl_program();
    let name = unique_name("plugin");
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("cm.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  image: ko://example.com/hello\n"
        ),
    )
    .unwrap();
    let links = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin("kubectl-ko"), links.path().join("kubectl-ko")).unwrap();
    let path = format!("{}:{}", links.path().display(), std::env::var("PATH").unwrap_or_default());
    let run = KoCmd::program(kubectl_path)
        .args(["ko", "apply", "-f", dir.path().to_str().unwrap()])
        .cwd(fixture("hello"))
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig())
        .env("KO_DOCKER_REPO", unique_repo("plugin"))
        .run();
    run.assert_success();
    assert_eq!(run.stdout_lines(), [format!("configmap/{name} created")], "{run}");
    assert!(get(&["configmap", &name], "{.data.image}").contains("@sha256:"));
}

#[test]
fn bad_clusters_and_kinds_fail_before_anything_is_built() {
    let repo = unique_repo("apply-bad");
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("x.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {image: ko://example.com/hello}\n---\napiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n",
    )
    .unwrap();
    let run = apply(dir.path(), &[], &repo);
    run.assert_failure();
    assert!(
        run.stderr.contains("x.yaml:6: the cluster at") && run.stderr.contains("does not serve kind Gizmo"),
        "{run}"
    );
    assert!(!run.stderr.contains("Building"), "nothing may be built before the kinds are checked: {run}");

    let run = ko(&["apply", "-f", dir.path().to_str().unwrap()]).env("KUBECONFIG", "/nonexistent/config").run();
    run.assert_failure();
    assert!(run.stderr.contains("no kubeconfig found at /nonexistent/config"), "{run}");

    let unreachable = dir.path().join("unreachable");
    fs::write(
        &unreachable,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: gone\n  context: {cluster: c, user: u}\ncurrent-context: gone\n",
    )
    .unwrap();
    let run = ko(&["delete", "-f", dir.path().join("x.yaml").to_str().unwrap()]).env("KUBECONFIG", &unreachable).run();
    run.assert_failure();
    assert!(run.stderr.contains("cannot reach the Kubernetes API server at https://127.0.0.1:9"), "{run}");

    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("y.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-y, namespace: a}\n")
        .unwrap();
    let run = ko(&["apply", "-f", other.path().to_str().unwrap(), "-n", "b"]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    assert!(run.stderr.contains("y.yaml:1: the object's namespace \"a\" does not match --namespace \"b\""), "{run}");
}

/// What kubectl does with the same YAML: `-n ""` is no `-n`, a cluster-scoped object's
/// namespace means nothing to `-n`, an empty selection is an error, `create` takes
/// `generateName`, `--dry-run=` is no mode, and `delete` goes on past a kind the cluster does
/// not serve, failing it even with `--ignore-not-found`.
#[test]
fn namespaces_selections_generated_names_and_unserved_kinds_as_kubectl_has_them() {
    let config = || kubeconfig();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (cm, role, namespace) = (unique_name("kctl-cm"), unique_name("kctl-role"), unique_name("kctl-ns"));
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let mixed = write(
        "mixed.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {cm}, labels: {{app: kctl}}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {role}, namespace: elsewhere, labels: {{app: kctl}}}}\nrules: []\n"
        ),
    );
    // A ClusterRole's namespace is no conflict with -n.
    let run = ko(&["apply", "-f", &mixed, "-n", &namespace]).env("KUBECONFIG", config()).run();
    run.assert_success();
    assert_eq!(get(&["configmap", &cm, "-n", &namespace], "{.metadata.name}"), cm);
    // -n "" is the context's namespace (default).
    let run = ko(&["apply", "-f", &mixed, "-n", ""]).env("KUBECONFIG", config()).run();
    run.assert_success();
    assert_eq!(get(&["configmap", &cm, "-n", "default"], "{.metadata.name}"), cm);
    // A selector that picks nothing is an error, not a silent success.
    let run = ko(&["apply", "-f", &mixed, "-l", "app=none"]).env("KUBECONFIG", config()).run();
    run.assert_failure();
    assert!(run.stderr.contains("no objects passed to apply"), "{run}");
    // `--dry-run=` with an empty mode changes nothing.
    let run = ko(&["apply", "-f", &mixed, "--dry-run="]).env("KUBECONFIG", config()).run();
    run.assert_failure();
    assert!(run.stderr.contains("is not a dry-run mode"), "{run}");

    // create names an object from generateName, as the server picks it.
    let generated = write(
        "generated.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{generateName: job-, namespace: {namespace}}}\n"),
    );
    let run = ko(&["create", "-f", &generated]).env("KUBECONFIG", config()).run();
    run.assert_success();
    let line = run.stdout.trim();
    assert!(
        line.starts_with("configmap/job-") && line.ends_with(" created") && line.len() > "configmap/job- created".len(),
        "{run}"
    );
    let run = ko(&["apply", "-f", &generated]).env("KUBECONFIG", config()).run();
    run.assert_failure();
    assert!(run.stderr.contains("only created"), "{run}");

    // delete goes on past a kind the cluster does not serve, and fails it, with
    // --ignore-not-found too (kubectl: "resource mapping not found").
    let gone_kind = write(
        "gone.yaml",
        &format!(
            "apiVersion: example.com/v1\nkind: Vanished\nmetadata: {{name: v}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {cm}}}\n"
        ),
    );
    let run = ko(&["delete", "-f", &gone_kind]).env("KUBECONFIG", config()).run();
    run.assert_failure();
    assert!(run.stdout.contains(&format!("configmap \"{cm}\" deleted")), "{run}");
    assert!(run.stderr.contains("does not serve kind Vanished in example.com/v1, so v cannot be deleted"), "{run}");
    let run = ko(&["delete", "-f", &gone_kind, "--ignore-not-found"]).env("KUBECONFIG", config()).run();
    run.assert_failure();
    assert!(run.stderr.contains("does not serve kind Vanished"), "{run}");
    // Nothing left to delete after a selector: kubectl's words.
    let run = ko(&["delete", "-f", &mixed, "-l", "app=none"]).env("KUBECONFIG", config()).run();
    run.assert_success();
    assert!(run.stderr.contains("No resources found"), "{run}");
    // A directory without manifests is likely a mistyped path: an error, as with kubectl.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "# not a manifest\n").unwrap();
    let run = ko(&["delete", "-f", &empty.path().display().to_string()]).env("KUBECONFIG", config()).run();
    crate::build_errors::assert_clear_error(&run, &["holds no .yaml, .yml or .json files"]);
}

/// A CustomResourceDefinition `id.example.com` of `Gadget` (scope `scope`) serving `versions`,
/// then, when `object` names a version, one Gadget of it with `metadata.namespace: other`.
fn gadget_crd(id: &str, scope: &str, versions: &[&str], object: Option<&str>) -> String {
    let mut text = format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{id}.example.com
spec:
  group: {id}.example.com
  scope: {scope}
  names: {{kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}}
  versions:
"
    );
    for (i, version) in versions.iter().enumerate() {
        text.push_str(&format!(
            "  - name: {version}\n    served: true\n    storage: {}\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
            i == 0
        ));
    }
    if let Some(version) = object {
        text.push_str(&format!(
            "---\napiVersion: {id}.example.com/{version}\nkind: Gadget\nmetadata:\n  name: g\n  namespace: other\n"
        ));
    }
    text
}

/// A version added to a CustomResourceDefinition that is established already is served a
/// moment after the apply: its objects in the same run wait for it. A cluster-scoped kind the
/// input defines takes its scope from the definition, so `-n` does not clash with it.
#[test]
fn objects_of_a_version_or_kind_the_same_input_defines_are_applied() {
    let id = unique_name("crdver");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crd.yaml");
    fs::write(&path, gadget_crd(&id, "Cluster", &["v1"], None)).unwrap();
    let ko_apply = |extra: &[&str]| {
        let mut args = vec!["apply", "-f", path.to_str().unwrap()];
        args.extend(extra);
        ko(&args).env("KUBECONFIG", kubeconfig()).run()
    };
    ko_apply(&[]).assert_success();
    for round in 0..3 {
        let version = format!("v{}", round + 2);
        let mut versions = vec!["v1".to_string()];
        versions.extend((2..=round + 2).map(|v| format!("v{v}")));
        let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
        fs::write(&path, gadget_crd(&id, "Cluster", &versions, Some(&version))).unwrap();
        let run = ko_apply(&["-n", "default"]);
        run.assert_success();
        let outcomes: &[&str] = if round == 0 { &["created"] } else { &["configured", "unchanged"] };
        assert!(outcomes.iter().any(|o| run.stdout.contains(&format!("/g {o}\n"))), "{run}");
    }
    kubectl(&["delete", "crd", &format!("gadgets.{id}.example.com"), "--wait=false"]);
}

/// `delete -f` returns once the object is gone, as kubectl does: an object with a finalizer
/// stays (marked for deletion) until the finalizer is removed, and the delete waits, saying
/// what it waits for; `--wait=false` returns at once.
#[test]
fn delete_waits_until_the_objects_are_gone() {
    let namespace = unique_name("delete-wait");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.yaml");
    fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: {namespace}\n  finalizers: [example.com/hold]\n"
        ),
    )
    .unwrap();
    kubectl(&["create", "-f", path.to_str().unwrap()]).assert_success();
    let release = || {
        let none = r#"{"metadata":{"finalizers":null}}"#;
        kubectl(&["patch", "configmap", "held", "-n", &namespace, "--type=merge", "-p", none]).assert_success();
    };
    let file = path.to_str().unwrap().to_string();
    let running = std::thread::spawn(move || ko(&["delete", "-f", &file]).env("KUBECONFIG", kubeconfig()).run());
    // Once the delete has marked it, give it longer than the 3 s after which it says why it
    // waits.
    let marked = std::time::Instant::now();
    while get(&["configmap", "held", "-n", &namespace], "{.metadata.deletionTimestamp}").is_empty() {
        assert!(marked.elapsed() < std::time::Duration::from_secs(120), "the delete never marked the object");
        assert!(!running.is_finished(), "delete -f ended before marking the object");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(!running.is_finished(), "delete -f returned while the finalizer holds the object");
    release();
    let run = running.join().unwrap();
    run.assert_success();
    assert_eq!(run.stdout_lines(), [format!("configmap \"held\" deleted from {namespace} namespace")], "{run}");
    assert!(run.stderr.contains("waiting for configmap/held to be gone (finalizers: example.com/hold)"), "{run}");
    assert_not_found(&["configmap", "held", "-n", &namespace]);

    // --wait=false: deleted (marked), and back at once.
    kubectl(&["create", "-f", path.to_str().unwrap()]).assert_success();
    let run = ko(&["delete", "-f", path.to_str().unwrap(), "--wait=false"]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    let marked =
        kubectl(&["get", "configmap", "held", "-n", &namespace, "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(!marked.assert_success().stdout.trim().is_empty(), "not marked for deletion: {run}");
    release();
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// What kubectl applies in its stride: a `List` of many objects that share one anchored label
/// set, and a custom resource nested a hundred levels deep (the YAML reader's defaults stop
/// at 64 levels and ten aliases per anchor). One too deep to be read back is refused first.
#[test]
fn large_aliased_and_deep_inputs_apply_as_with_kubectl() {
    let id = unique_name("deep");
    let namespace = unique_name("aliased");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let dir = tempfile::tempdir().unwrap();
    let mut list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c0, namespace: {namespace}, labels: &l {{app: web}}}}}}\n"
    );
    for i in 1..=120 {
        list.push_str(&format!(
            "- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c{i}, namespace: {namespace}, labels: *l}}}}\n"
        ));
    }
    let deep = format!(
        "{}---\napiVersion: {id}.example.com/v1\nkind: Gadget\nmetadata: {{name: g}}\nspec: {}1{}\n",
        gadget_crd(&id, "Cluster", &["v1"], None),
        "{a: ".repeat(100),
        "}".repeat(100)
    );
    fs::write(dir.path().join("list.yaml"), list).unwrap();
    fs::write(dir.path().join("deep.yaml"), deep).unwrap();
    let run = ko(&["apply", "-f", dir.path().to_str().unwrap()]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    assert_eq!(get(&["configmap", "c120", "-n", &namespace], "{.metadata.labels.app}"), "web");
    let gadget = kubectl(&["get", &format!("gadgets.{id}.example.com"), "g", "-o", "json"]);
    let gadget: serde_json::Value = serde_json::from_str(&gadget.assert_success().stdout).unwrap();
    let mut at = &gadget["spec"];
    for _ in 0..100 {
        at = &at["a"];
    }
    assert_eq!(at, &serde_json::json!(1), "{gadget}");

    // Deeper than the answer can be read back: refused before anything is sent.
    let deeper = tempfile::tempdir().unwrap();
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: first, namespace: {namespace}}}\n---\napiVersion: {id}.example.com/v1\nkind: Gadget\nmetadata: {{name: too-deep}}\nspec: {}1{}\n",
        "{a: ".repeat(130),
        "}".repeat(130)
    );
    fs::write(deeper.path().join("deeper.yaml"), text).unwrap();
    let run = ko(&["apply", "-f", deeper.path().to_str().unwrap()]).env("KUBECONFIG", kubeconfig()).run();
    crate::build_errors::assert_clear_error(&run, &["deeper.yaml:8", "nested deeper than 120 levels"]);
    assert_not_found(&["configmap", "first", "-n", &namespace]);
    kubectl(&["delete", "crd", &format!("gadgets.{id}.example.com"), "--wait=false"]);
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}
