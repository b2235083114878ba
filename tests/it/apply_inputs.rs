//! `apply`, `create` and `delete` with input kubectl takes in its stride or refuses: exported
//! objects, misspelt or mistyped metadata, empty or unknown kubeconfig names, refused
//! credentials, a CustomResourceDefinition whose names are taken, and a pod's service account
//! instead of a kubeconfig. Against the real kube-apiserver, checked with the real kubectl.

use std::fs;

use crate::util::*;

fn get(args: &[&str], jsonpath: &str) -> Run {
    let path = format!("jsonpath={jsonpath}");
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", &path]);
    kubectl(&all)
}

/// What kubectl does with them: an exported object (resourceVersion and managedFields in it)
/// applies over the object and creates it again once it is gone, a misspelt metadata key fails `create`, a namespace YAML reads as
/// a number is refused (it used to mean "no namespace") and nothing is touched by either, and
/// a key given twice keeps its last value.
#[test]
fn exported_misspelt_and_mistyped_objects_as_kubectl_takes_them() {
    let (namespace, name) = (unique_name("inputs-ns"), unique_name("inputs-cm"));
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    // Made by client-side kubectl apply, so that our apply takes its fields over first.
    let original =
        write("cm.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: '1'}}\n"));
    kubectl(&["apply", "-n", &namespace, "-f", &original]).assert_success();
    let exported = kubectl(&["get", "configmap", &name, "-n", &namespace, "--show-managed-fields", "-o", "yaml"]);
    exported.assert_success();
    assert!(exported.stdout.contains("managedFields") && exported.stdout.contains("resourceVersion"), "{exported}");
    let changed = write("exported.yaml", &exported.stdout.replace("a: \"1\"", "a: \"2\""));
    let run = ko(&["apply", "-f", &changed]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    assert_eq!(run.stdout_lines(), [format!("configmap/{name} configured")], "{run}");
    assert_eq!(get(&["configmap", &name, "-n", &namespace], "{.data.a}").stdout, "2");

    // Once the object is gone (a restore, another cluster), the export creates it again with
    // create and with apply, as with kubectl: its uid and resourceVersion name nothing now.
    for verb in ["create", "apply"] {
        kubectl(&["delete", "configmap", &name, "-n", &namespace]).assert_success();
        let run = ko(&[verb, "-f", &changed]).env("KUBECONFIG", kubeconfig()).run();
        run.assert_success();
        assert_eq!(run.stdout_lines(), [format!("configmap/{name} created")], "{run}");
        assert_eq!(get(&["configmap", &name, "-n", &namespace], "{.data.a}").stdout, "2");
    }

    // create refuses a misspelt metadata key, as `kubectl create` does; nothing is made.
    let typo = format!("{name}-typo");
    let misspelt = write(
        "typo.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {typo}\n  namepsace: {namespace}\n"),
    );
    let run = ko(&["create", "-f", &misspelt, "-n", &namespace]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    assert!(run.stderr.contains("unknown field \"metadata.namepsace\""), "{run}");
    get(&["configmap", &typo, "-n", &namespace], "{.metadata.name}").assert_failure();

    // `namespace: 2024` is a number: refused, and the object of that name in -n's namespace
    // is left alone.
    let numeric = write(
        "numeric.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: 2024\n"),
    );
    for verb in ["delete", "apply"] {
        let run = ko(&[verb, "-f", &numeric, "-n", &namespace]).env("KUBECONFIG", kubeconfig()).run();
        run.assert_failure();
        assert!(
            run.stderr.contains("numeric.yaml:1: the ConfigMap's metadata.namespace 2024 is not a string; quote it"),
            "{run}"
        );
    }
    assert_eq!(get(&["configmap", &name, "-n", &namespace], "{.data.a}").stdout, "2");

    // A key given twice keeps its last value, as kubectl's decoder has it.
    let twice = write(
        "twice.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  a: '3'\n  a: '4'\n"),
    );
    let run = ko(&["apply", "-f", &twice, "-n", &namespace]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    assert_eq!(get(&["configmap", &name, "-n", &namespace], "{.data.a}").stdout, "4");
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]).assert_success();
}

/// `--context="$CTX"` with the variable empty is no flag, as in kubectl; a name the kubeconfig
/// does not have, and credentials the server refuses, each get their own error.
#[test]
fn kubeconfig_names_and_credentials_as_kubectl_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.yaml");
    fs::write(&file, format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n", unique_name("names")))
        .unwrap();
    let file = file.to_str().unwrap();
    let dry = |extra: &[&str]| {
        let mut args = vec!["apply", "-f", file, "--dry-run=server"];
        args.extend(extra);
        ko(&args).env("KUBECONFIG", kubeconfig()).run()
    };
    // --prune is the watch's; kubectl's goes after --, and the error says so.
    let run = dry(&["--prune"]);
    run.assert_failure();
    assert!(run.stderr.contains("needs --watch; for kubectl's prune, pass it after --"), "{run}");
    let run = dry(&["--context=", "--cluster=", "--user=", "--kubeconfig=", "--namespace="]);
    run.assert_success();
    assert!(run.stdout.ends_with("created (server dry run)\n"), "{run}");
    for (flag, what) in [("--context=nope", "context"), ("--cluster=nope", "cluster"), ("--user=nope", "user")] {
        let run = dry(&[flag]);
        run.assert_failure();
        assert!(run.stderr.contains(&format!("{what} \"nope\" does not exist")), "{run}");
        assert!(run.stderr.contains(&format!("fix --{what}")), "{run}");
    }
    let config = fs::read_to_string(kubeconfig()).unwrap();
    let token_line =
        config.lines().find(|l| l.trim_start().starts_with("token:")).expect("the test kubeconfig has a token");
    let refused = dir.path().join("refused");
    fs::write(&refused, config.replace(token_line, "    token: not-the-token")).unwrap();
    let run = ko(&["apply", "-f", file, "--kubeconfig", refused.to_str().unwrap()]).run();
    run.assert_failure();
    assert!(run.stderr.contains("refused the credentials of context"), "{run}");
    assert!(!run.stderr.contains("cannot reach"), "{run}");
}

/// A CustomResourceDefinition whose list kind another one holds is never established: the
/// apply says why at once (not after a minute) and still applies the other objects.
#[test]
fn a_crd_whose_names_are_taken_fails_alone_and_at_once() {
    let group = format!("{}.example.com", unique_name("taken"));
    let crd = |plural: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.{group}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: Gadget, plural: {plural}, listKind: GadgetList}}\n  versions: [{{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object}}}}}}]\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.yaml");
    fs::write(&first, crd("gadgets")).unwrap();
    kubectl(&["apply", "-f", first.to_str().unwrap()]).assert_success();
    let cm = unique_name("after-crd");
    let second = dir.path().join("second.yaml");
    fs::write(&second, format!("{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {cm}}}\n", crd("widgets")))
        .unwrap();
    let started = std::time::Instant::now();
    let run = ko(&["apply", "-f", second.to_str().unwrap()]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    assert!(
        run.stderr.contains(&format!("customresourcedefinition widgets.{group}: its names were not accepted")),
        "{run}"
    );
    assert!(run.stderr.contains("GadgetList"), "{run}");
    assert!(started.elapsed() < std::time::Duration::from_secs(50), "waited for the whole establish timeout: {run}");
    assert_eq!(get(&["configmap", &cm], "{.metadata.name}").stdout, cm);
    kubectl(&["delete", "-f", second.to_str().unwrap(), "-f", first.to_str().unwrap()]).assert_success();
}

/// In a pod without a kubeconfig (a CI runner's pod), the service account is used, as kubectl
/// uses it. The pod is made with a private mount namespace whose /run holds the account's
/// files, and the service's address in the environment.
#[test]
fn a_pod_without_a_kubeconfig_uses_its_service_account() {
    let view = |path: &str| {
        let run = kubectl(&["config", "view", "--raw", "--minify", "-o", &format!("jsonpath={path}")]);
        run.assert_success();
        run.stdout
    };
    let server = view("{.clusters[0].cluster.server}");
    let (host, port) = server.trim_start_matches("https://").rsplit_once(':').expect("server with a port");
    let ca = view("{.clusters[0].cluster.certificate-authority-data}");
    let token = view("{.users[0].user.token}");
    let namespace = unique_name("in-pod");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("token"), token).unwrap();
    fs::write(dir.path().join("namespace"), &namespace).unwrap();
    fs::write(dir.path().join("ca.b64"), ca).unwrap();
    let cm = unique_name("from-pod");
    fs::write(dir.path().join("cm.yaml"), format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {cm}}}\n"))
        .unwrap();
    let script = "set -e
mount -t tmpfs tmpfs /run
sa=/run/secrets/kubernetes.io/serviceaccount
mkdir -p $sa
cp \"$1/token\" \"$1/namespace\" $sa/
base64 -d \"$1/ca.b64\" > $sa/ca.crt
exec \"$2\" -f \"$1/cm.yaml\"";
    let run = KoCmd::program("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(dir.path())
        .arg(bin("kubectl-ko-apply"))
        .env_remove("KUBECONFIG")
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", port)
        .run();
    run.assert_success();
    assert_eq!(run.stdout_lines(), [format!("configmap/{cm} created")], "{run}");
    // In the pod's namespace, read from the service account's files.
    assert_eq!(get(&["configmap", &cm, "-n", &namespace], "{.metadata.name}").stdout, cm);
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]).assert_success();
}

/// An object that is being deleted (a finalizer holds it) is applied, with kubectl's warning
/// that the change goes with it.
#[test]
fn applying_to_an_object_being_deleted_warns() {
    let name = unique_name("held");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("held.yaml");
    let write = |value: &str| {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, finalizers: [example.com/hold]}}\ndata: {{a: '{value}'}}\n"
        );
        fs::write(&file, text).unwrap();
    };
    write("1");
    let path = file.to_str().unwrap();
    kubectl(&["apply", "-f", path]).assert_success();
    kubectl(&["delete", "-f", path, "--wait=false"]).assert_success();
    write("2");
    let run = ko(&["apply", "-f", path]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    assert_eq!(run.stdout_lines(), [format!("configmap/{name} configured")], "{run}");
    assert!(run.stderr.contains(&format!("configmap/{name} is being deleted")), "{run}");
    kubectl(&["patch", "configmap", &name, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#])
        .assert_success();
}

/// Every object the cluster cannot take is named in one run, as kubectl names them, and
/// nothing is sent while any is wrong.
#[test]
fn every_unknown_kind_is_named_and_nothing_is_sent() {
    let namespace = unique_name("unknown-kinds");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unknown.yaml");
    fs::write(
        &path,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: ConfigMapp\nmetadata: {name: w2}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n",
    )
    .unwrap();
    let run = ko(&["apply", "-f", path.to_str().unwrap(), "-n", &namespace]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    assert!(run.stderr.contains("unknown.yaml:1: ") && run.stderr.contains("kind Widget"), "{run}");
    assert!(run.stderr.contains("unknown.yaml:5: ") && run.stderr.contains("kind ConfigMapp"), "{run}");
    assert!(
        run.stderr
            .trim_end()
            .ends_with("error: 2 of 3 objects cannot go to the cluster (see the errors above); nothing was sent"),
        "{run}"
    );
    get(&["configmap", "fine", "-n", &namespace], "{.metadata.name}").assert_failure();
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// A block scalar that ends a file without a line break has none in its value (as kubectl
/// and ko read it), also when another file is joined after it, in `apply` as in `resolve`.
#[test]
fn a_block_scalar_ending_a_file_unbroken_keeps_its_value() {
    let (first, second) = (unique_name("unbroken"), unique_name("after"));
    let dir = tempfile::tempdir().unwrap();
    let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {first}}}\ndata:\n  token: |\n    abc");
    fs::write(dir.path().join("a.yaml"), text).unwrap();
    fs::write(dir.path().join("b.yaml"), format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {second}}}\n"))
        .unwrap();
    let path = dir.path().to_str().unwrap();
    let run = ko(&["resolve", "-f", path]).run();
    run.assert_success();
    // kubectl reads the joined stream back.
    let read = KoCmd::program(kubectl_program()).args(["apply", "--dry-run=client", "-o", "json", "-f", "-"]);
    let read = read.stdin(run.stdout.as_bytes()).env("KUBECONFIG", kubeconfig()).run();
    read.assert_success();
    let list: serde_json::Value = serde_json::from_str(&read.stdout).unwrap();
    assert_eq!(list["items"][0]["data"]["token"], "abc", "{run}");

    ko(&["apply", "-f", path]).env("KUBECONFIG", kubeconfig()).run().assert_success();
    let live = kubectl(&["get", "configmap", &first, "-o", "json"]);
    let live: serde_json::Value = serde_json::from_str(&live.stdout).unwrap();
    assert_eq!(live["data"]["token"], "abc", "{live}");
    ko(&["delete", "-f", path]).env("KUBECONFIG", kubeconfig()).run().assert_success();
}

/// As kubectl: a document that is no object fails `delete`, named by its line, after the
/// objects of the other documents are deleted.
#[test]
fn delete_goes_past_a_document_that_is_no_object() {
    let (first, second) = (unique_name("past-a"), unique_name("past-b"));
    for name in [&first, &second] {
        kubectl(&["create", "configmap", name]).assert_success();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    let object = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
    fs::write(&file, format!("{}---\nfoo: bar\n---\n{}", object(&first), object(&second))).unwrap();
    let run = ko(&["delete", "-f", file.to_str().unwrap()]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    let deleted = |name: &str| format!("configmap {name:?} deleted from default namespace");
    assert_eq!(run.stdout_lines(), [deleted(&first), deleted(&second)], "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("{}:5: ", file.display())) && last.contains("no apiVersion"), "{run}");
    for name in [&first, &second] {
        let gone = kubectl(&["get", "configmap", name]);
        assert!(gone.stderr.contains("NotFound"), "{gone}");
    }
}
