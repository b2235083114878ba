//! The templates of `testdata/cases.txt` rendered by [`render`] and by Go's own
//! `text/template` (`testdata/render.go`, run with `go run`, against the same data): each
//! must give the same text, or fail in both.

use std::io::Write;
use std::process::{Command, Stdio};

use super::render;
use super::tests::data;

/// Go's answer for each case: its output as a JSON string, or `ERR`.
fn rendered_by_go(cases: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/template/testdata");
    let mut go = Command::new("go")
        .args(["run", "render.go"])
        .current_dir(&dir)
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        // Run on this machine, whatever the caller targets.
        .env_remove("GOOS")
        .env_remove("GOARCH")
        .env_remove("GOARM")
        .env_remove("GOAMD64")
        .env_remove("GOEXPERIMENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("go runs (Go is required for this test; scripts/test.sh has it)");
    go.stdin.take().unwrap().write_all(cases.as_bytes()).unwrap();
    let out = go.wait_with_output().unwrap();
    assert!(out.status.success(), "go run render.go failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn renders_as_go_text_template_does() {
    let cases = include_str!("testdata/cases.txt");
    let go = rendered_by_go(cases);
    let lines: Vec<&str> = cases.lines().collect();
    assert_eq!(go.len(), lines.len(), "go answered {} of {} cases", go.len(), lines.len());
    let mut differ = Vec::new();
    for (case, go) in lines.iter().zip(&go) {
        let ours = match render(&case.replace("\\n", "\n"), &data()) {
            Ok(text) => serde_json::to_string(&text).unwrap(),
            Err(_) => "ERR".to_string(),
        };
        if &ours != go {
            differ.push(format!("{case}\n  go:   {go}\n  ours: {ours}"));
        }
    }
    assert!(differ.is_empty(), "{} of {} cases differ from Go:\n{}", differ.len(), lines.len(), differ.join("\n"));
}
