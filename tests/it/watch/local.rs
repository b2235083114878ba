//! `--watch` with the local publishers: `ko.local` loads each rebuilt image into the real Docker
//! daemon, where it runs with the new code; `kind.local` imports it into the nodes' containerd.

use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// The last `image:` value of the printed streams that names `app`.
fn last_image(watch: &Watching, app: &str) -> Option<String> {
    let out = watch.stdout.lock().unwrap();
    out.iter()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .find(|image| image.contains(&format!("/{app}")))
        .map(str::to_string)
}

/// Waits for a printed `image:` of `app` other than `before`.
fn next_image(watch: &Watching, app: &str, before: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match last_image(watch, app) {
            Some(image) if image != before => return image,
            _ => assert!(Instant::now() < deadline, "no new {app} image printed:\n{}", watch.output()),
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ko_local_loads_each_rebuilt_image_into_the_daemon() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    config(dir, "unused", 1);
    let cmd = ko(&["resolve", "-f", "apps.yaml", "--watch"])
        .cwd(dir)
        .env("KO_DOCKER_REPO", "ko.local")
        .env("DOCKER_HOST", docker_host());
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3"), "{}", watch.output());
    let before = last_image(&watch, "alpha").expect("alpha's image in the first stream");
    assert!(before.starts_with("ko.local/"), "{before}");

    write(&dir.join("cmd/alpha/main.go"), &source("alpha", "local"));
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/alpha)"), "{line}");
    let after = next_image(&watch, "alpha", &before);
    let run = docker(&["run", "--rm", "--network=none", &after]);
    run.assert_success();
    assert_eq!(run.stdout.trim(), "local from alpha!", "{run}");
    let old = docker(&["run", "--rm", "--network=none", &before]);
    assert_eq!(old.assert_success().stdout.trim(), "hello from alpha!", "{old}");
}

#[test]
fn kind_local_imports_each_rebuilt_image_into_the_nodes() {
    let cluster = crate::local::Cluster::start(1);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    config(dir, "unused", 1);
    let cmd = ko(&["resolve", "-f", "apps.yaml", "--watch"])
        .cwd(dir)
        .env("KO_DOCKER_REPO", "kind.local")
        .env("KIND_CLUSTER_NAME", &cluster.name)
        .env("DOCKER_HOST", docker_host());
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3"), "{}", watch.output());
    let before = last_image(&watch, "gamma").expect("gamma's image in the first stream");
    assert!(before.starts_with("kind.local/"), "{before}");

    write(&dir.join("cmd/gamma/main.go"), &source("gamma", "kind"));
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/gamma)"), "{line}");
    let after = next_image(&watch, "gamma", &before);
    let (_, hex) = after.rsplit_once(':').expect("kind.local references end in :<hex>");
    let images = cluster.images(&cluster.nodes[0]);
    assert!(images.contains(&(after.clone(), format!("sha256:{hex}"))), "{after}: {images:?}");
    assert!(images.iter().any(|(name, _)| *name == before), "the first image is there too: {images:?}");
}
