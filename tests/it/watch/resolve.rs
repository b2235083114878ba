//! `kubectl ko resolve --watch`: the whole stream printed again after each change, through the
//! polling watcher; a `.ko.yaml` named by `KO_CONFIG_PATH` outside the working directory is
//! watched too.

use super::*;

#[test]
fn resolve_watch_prints_the_stream_again_after_each_change() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    config(dir, "unused", 1);
    // Through the polling fallback, which this test checks end to end.
    let elsewhere = tempfile::tempdir().unwrap();
    let ko_yaml = elsewhere.path().join("ko.yaml");
    std::fs::write(&ko_yaml, "defaultPlatforms: [linux/amd64]\n").unwrap();
    let cmd = ko(&["resolve", "-f", ".", "--watch", "-v"])
        .cwd(dir)
        .env("KO_CONFIG_PATH", &ko_yaml)
        .env("KO_DOCKER_REPO", unique_repo("watch-resolve"))
        .env("KUBECTL_KO_WATCH_POLL", "1");
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3") && first.contains("printed the stream"), "{first}");
    watch.line("the polling notice (-v)", |l| l.contains("polling the files for changes every 500 ms"));
    config(dir, "unused", 3);
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 0 of 3"), "{line}");
    // Two streams of four files (a namespace, three apps), each file followed by `---`, the
    // second with the new field.
    let separators = |lines: &[String]| lines.iter().filter(|l| l.as_str() == "---").count();
    watch.wait_out("the second stream", |lines| {
        (separators(lines) >= 2 * 4).then(|| lines.iter().find(|l| l.contains("replicas: 3")).cloned()).flatten()
    });
    let out = watch.stdout.lock().unwrap().clone();
    assert_eq!(separators(&out), 2 * 4, "{out:?}");
    assert!(!out.iter().any(|l| l.contains("ko://")), "{out:?}");

    // The configuration named by KO_CONFIG_PATH: every image is built again, with its platforms.
    std::fs::write(&ko_yaml, "defaultPlatforms: [linux/amd64, linux/arm64]\n").unwrap();
    let line = watch.summary(3);
    assert!(line.contains("changed ") && line.contains("ko.yaml") && line.contains("images rebuilt: 3 of 3"), "{line}");
    assert!(!line.contains("unchanged"), "{line}");
}
