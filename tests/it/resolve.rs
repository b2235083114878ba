//! `kubectl ko resolve`: every `ko://` string is built once and replaced, and every other byte
//! of the input comes back as written.

use std::fs;

use crate::util::*;

fn manifest(name: &str) -> String {
    fixture("manifests").join(name).display().to_string()
}

/// Builds the two fixture commands the manifests name, as `build` prints them.
fn built_references(repo: &str) -> (String, String) {
    let run = ko(&["build", "example.com/hello", "example.com/hello/cmd/greeter"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", repo)
        .run();
    run.assert_success();
    let lines = run.stdout_lines();
    (lines[0].to_string(), lines[1].to_string())
}

#[test]
fn replaces_each_reference_and_keeps_every_other_byte() {
    let repo = unique_repo("resolve");
    let path = manifest("app.yaml");
    let run = ko(&["resolve", "-f", &path]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();

    // The same images built directly have the same digests (builds are reproducible).
    let (hello, greeter) = built_references(&repo);
    let input = fs::read_to_string(&path).unwrap();
    // A block scalar's value is the reference alone: its header strips the final line break.
    let expected = input
        .replace("ko://example.com/hello/cmd/greeter", &greeter)
        .replace("ko://example.com/hello", &hello)
        .replace("  script: |\n", "  script: |-\n");
    // The stream ends with `---`, as ko's does.
    assert_eq!(run.stdout, format!("{expected}---\n"), "{run}");

    // Each distinct reference was built once, however often it appears.
    assert_eq!(run.stderr.matches("Building example.com/hello for").count(), 1, "{run}");
    assert_eq!(run.stderr.matches("Building example.com/hello/cmd/greeter for").count(), 1, "{run}");

    let out = run_image(&hello);
    out.assert_success();
    assert_eq!(out.value("uid"), Some("65532"), "{out}");
}

/// A registry named by an IPv6 address: its references start with `[`, which plain YAML would
/// read as a list, so they are written quoted (as ko's encoder writes them).
#[test]
fn an_ipv6_registry_gives_quoted_references() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    fs::write(&path, "image: ko://example.com/hello\nargs: [ko://example.com/hello]\n").unwrap();
    let run = ko(&["resolve", "--push=false", "-f", path.to_str().unwrap()])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", "[::1]:5000/team")
        .run();
    run.assert_success();
    let lines = run.stdout_lines();
    let reference =
        lines[0].strip_prefix("image: '").and_then(|r| r.strip_suffix('\'')).unwrap_or_else(|| panic!("{run}"));
    assert!(reference.starts_with("[::1]:5000/team/hello-") && reference.contains("@sha256:"), "{run}");
    assert_eq!(lines[1], format!("args: ['{reference}']"), "{run}");
}

#[test]
fn reads_stdin_and_json_and_joins_files_with_separators() {
    let repo = unique_repo("resolve-stdin");
    let json = manifest("configmap.json");
    // Stdin in UTF-16 with its byte order mark, as Windows PowerShell 5 pipes and saves text.
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("a: ko://example.com/hello # from stdin\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let run =
        ko(&["resolve", "-f", "-", "-f", &json]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).stdin(utf16).run();
    run.assert_success();
    let (hello, _) = built_references(&repo);
    let json_text = fs::read_to_string(&json).unwrap().replace("ko://example.com/hello", &hello);
    assert_eq!(run.stdout, format!("a: {hello} # from stdin\n---\n{json_text}---\n"), "{run}");
    let parsed: serde_json::Value = serde_json::from_str(&json_text).expect("the JSON file stays JSON");
    assert_eq!(parsed["data"]["image"], hello.as_str());
}

#[test]
fn walks_directories_in_name_order_and_recurses_only_with_r() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("sub")).unwrap();
    for (name, text) in [
        ("b.yaml", "b: 1\n"),
        ("a.yml", "a: 1\n"),
        ("c.json", "{\"c\": 1}\n"),
        ("notes.txt", "not yaml: [\n"),
        ("sub/d.yaml", "d: 1\n"),
    ] {
        fs::write(root.join(name), text).unwrap();
    }
    let dir_arg = root.display().to_string();
    let run = ko(&["resolve", "-f", &dir_arg]).run();
    run.assert_success();
    assert_eq!(run.stdout, "a: 1\n---\nb: 1\n---\n{\"c\": 1}\n---\n");
    let run = ko(&["resolve", "-R", "-f", &dir_arg]).run();
    run.assert_success();
    assert_eq!(run.stdout, "a: 1\n---\nb: 1\n---\n{\"c\": 1}\n---\nd: 1\n---\n");
}

#[test]
fn selectors_keep_matching_documents_and_list_items() {
    let path = manifest("select.yaml");
    let run = ko(&["resolve", "-f", &path, "-l", "app=web"]).run();
    run.assert_success();
    let expected = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels: {app: web, tier: front}
data: {a: \"1\"}
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: list-web, labels: {app: web}}
---
";
    assert_eq!(run.stdout, expected, "{run}");

    let names = |selector: &str| {
        let run = ko(&["resolve", "-f", &path, "-l", selector]).run();
        run.assert_success();
        run.stdout
            .split("name: ")
            .skip(1)
            .map(|rest| rest.split([',', '}', '\n']).next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("app!=web"), ["db", "plain", "list-db"]);
    assert_eq!(names("app in (db, web),tier"), ["web"]);
    assert_eq!(names("app notin (web)"), ["db", "plain", "list-db"]);
    assert_eq!(names("!app"), ["plain"]);
    // A value no label can have is refused, as ko refuses it, not taken to match nothing.
    let run = ko(&["resolve", "-f", &path, "-l", "app=-web"]).run();
    run.assert_failure();
    assert!(run.stderr.contains("\"-web\" is not a label value"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");

    // An empty selector (`-l "$SELECTOR"` with the variable unset) selects everything and asks
    // nothing of the documents, as in ko.
    let all = ko(&["resolve", "-f", &path]).run();
    all.assert_success();
    let empty = ko(&["resolve", "-f", &path, "-l", ""]).run();
    empty.assert_success();
    assert_eq!(empty.stdout, all.stdout);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("plain.yaml"), "just: data\n").unwrap();
    let plain = ko(&["resolve", "-f", dir.path().join("plain.yaml").to_str().unwrap(), "-l", ""]).run();
    plain.assert_success();
    assert_eq!(plain.stdout, "just: data\n---\n", "{plain}");

    // A List as `kubectl get -o json` writes it (flow style): the matching items stay, and
    // the output is still JSON.
    let item = |name: &str, app: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"app":"{app}"}}}}}}"#)
    };
    let json = format!(
        "{{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n    {},\n    {},\n    {}\n  ],\n  \"kind\": \"List\"\n}}\n",
        item("a", "db"),
        item("b", "web"),
        item("c", "db")
    );
    fs::write(dir.path().join("list.json"), &json).unwrap();
    let list = ko(&["resolve", "-f", dir.path().join("list.json").to_str().unwrap(), "-l", "app=web"]).run();
    list.assert_success();
    let parsed: serde_json::Value = serde_json::from_str(&list.stdout).expect("still JSON");
    assert_eq!(parsed["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(parsed["items"][0]["metadata"]["name"], "b", "{list}");
    // A List without items cannot be filtered: an error, as in ko.
    fs::write(dir.path().join("empty-list.yaml"), "apiVersion: v1\nkind: List\n").unwrap();
    let bad = ko(&["resolve", "-f", dir.path().join("empty-list.yaml").to_str().unwrap(), "-l", "app=web"]).run();
    bad.assert_failure();
    assert!(bad.stderr.contains("empty-list.yaml:1: --selector cannot filter a List without items"), "{bad}");
}

/// Files are joined into one valid stream: a byte order mark stays out of it, and a file that
/// opens with a directive follows a document end marker.
#[test]
fn joined_files_make_one_valid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let a = write("a.yaml", "a: 1\n");
    let bom = write("bom.yaml", "\u{feff}b: 2\n");
    let directive = write("directive.yaml", "%YAML 1.2\n---\nc: 3\n");
    let run = ko(&["resolve", "-f", &a, "-f", &bom, "-f", &directive]).run();
    run.assert_success();
    assert_eq!(run.stdout, "a: 1\n---\nb: 2\n...\n%YAML 1.2\n---\nc: 3\n---\n", "{run}");
    // kubectl-ko reads its own output back.
    let joined = write("joined.yaml", &run.stdout);
    ko(&["resolve", "-f", &joined]).run().assert_success();

    // Outputs appended to one file (`resolve -f one >> all; resolve -f two >> all`, as release
    // scripts written for ko do) stay two objects for kubectl, also from a file without a
    // final line break.
    let one = write("one.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}");
    let two = write("two.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n");
    let mut all = String::new();
    for file in [&one, &two] {
        let run = ko(&["resolve", "-f", file]).run();
        run.assert_success();
        all.push_str(&run.stdout);
    }
    let names = KoCmd::program("kubectl")
        .args(["create", "--dry-run=client", "-f", "-", "-o", "name"])
        .env("KUBECONFIG", kubeconfig())
        .stdin(all)
        .run();
    names.assert_success();
    assert_eq!(names.stdout, "configmap/one\nconfigmap/two\n", "{names}");

    // A stream that cannot be written (a full disk) fails the run instead of leaving a cut-off
    // file behind a success.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let out = ko(&["resolve", "-f", &a]).command().stdout(full).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("writing the results to stdout: No space left on device"), "{stderr}");
}

#[test]
fn bad_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let cases = [
        (write("broken.yaml", "a: 1\nb: [unclosed\n"), vec![], "broken.yaml:"),
        (
            write("missing.yaml", "kind: Pod\n\nimage: ko://example.com/nope\n"),
            vec![],
            "missing.yaml:3: ko://example.com/nope: ",
        ),
        (write("lib.yaml", "image: ko://example.com/hello/lib\n"), vec![], "not `package main`"),
        (write("plain.yaml", "just: data\n"), vec!["-l", "app=web"], "plain.yaml:1: --selector needs every document"),
        (write("sel.yaml", "a: 1\n"), vec!["-l", "app in (web"], "invalid selector"),
    ];
    for (path, extra, expected) in cases {
        let mut args = vec!["resolve", "-f", path.as_str()];
        args.extend(extra);
        let run = ko(&args).cwd(fixture("hello")).env("KO_DOCKER_REPO", unique_repo("bad")).run();
        run.assert_failure();
        assert!(run.stdout.is_empty(), "nothing is printed on failure: {run}");
        let error_line = run.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(error_line.contains(expected), "expected {expected:?} in:\n{run}");
        if path.ends_with("broken.yaml") {
            assert!(error_line.contains("invalid YAML"), "{run}");
        }
    }

    let run = ko(&["resolve"]).run();
    run.assert_failure();
    assert!(run.stderr.contains("error: -f: no input given"), "{run}");
    let run = ko(&["resolve", "-f", "/nonexistent/config"]).run();
    run.assert_failure();
    assert!(run.stderr.contains("-f /nonexistent/config: no such file or directory"), "{run}");
}

#[test]
fn a_failed_build_publishes_nothing() {
    let repo = unique_repo("resolve-half");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.yaml");
    // The second app exists but does not compile: the first compiles, and must not be published.
    let app = tempfile::tempdir().unwrap();
    fs::create_dir_all(app.path().join("broken")).unwrap();
    fs::write(app.path().join("go.mod"), "module example.com/half\n\ngo 1.21\n").unwrap();
    fs::write(app.path().join("main.go"), "package main\n\nfunc main() { println(\"good\") }\n").unwrap();
    fs::write(app.path().join("broken/main.go"), "package main\n\nfunc main() { undefined() }\n").unwrap();
    fs::write(&path, "a: ko://example.com/half\n---\nb: ko://example.com/half/broken\n").unwrap();
    let resolve =
        || ko(&["resolve", "-B", "-f", path.to_str().unwrap()]).cwd(app.path()).env("KO_DOCKER_REPO", &repo).run();
    let run = resolve();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    assert!(run.stderr.contains("example.com/half/broken") && run.stderr.contains("undefined"), "{run}");
    // Its layer may have gone up while the other compiled, but no tag names it.
    assert_untagged(&format!("{repo}/half"));
    // ...the repository the good app is published to, once nothing is broken.
    fs::write(app.path().join("broken/main.go"), "package main\n\nfunc main() { println(\"fixed\") }\n").unwrap();
    resolve().assert_success();
    assert_tagged(&format!("{repo}/half"), "latest");
}
