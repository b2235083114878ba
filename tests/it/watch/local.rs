//! `--watch` with the local publishers: `ko.local` loads each rebuilt image into the real Docker
//! daemon, where it runs with the new code; `kind.local` imports it into the nodes' containerd.

use std::path::Path;

use super::*;

/// Waits for a printed `image:` of `app` other than `before` (the last one printed) and returns
/// it.
#[track_caller]
fn next_image(watch: &mut Watching, app: &str, before: &str) -> String {
    let image_of =
        |line: &str| line.trim().strip_prefix("image: ").filter(|i| i.contains(&format!("/{app}"))).map(str::to_string);
    watch.wait_out(&format!("a new image of {app}"), |lines| {
        lines.iter().rev().find_map(|l| image_of(l)).filter(|image| image != before)
    })
}

/// Starts `cmd` (a `resolve --watch` of the three apps in `dir`), checks the first cycle,
/// changes `app`'s greeting and checks that only it was rebuilt. Returns the watch and `app`'s
/// image before and after, the first starting with `prefix`.
fn rebuild_one(cmd: KoCmd, dir: &Path, app: &str, greeting: &str, prefix: &str) -> (Watching, String, String) {
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3"), "{}", watch.output());
    let before = next_image(&mut watch, app, "");
    assert!(before.starts_with(prefix), "{before}");

    write(&dir.join(format!("cmd/{app}/main.go")), &source(app, greeting));
    let line = watch.summary(2);
    assert!(line.contains(&format!("images rebuilt: 1 of 3 (example.com/watched/cmd/{app})")), "{line}");
    let after = next_image(&mut watch, app, &before);
    (watch, before, after)
}

/// A module of the three apps and their YAML in a new directory, and `resolve --watch` of it.
fn watched_module(work: &Path) -> KoCmd {
    module(work);
    config(work, "unused", 1);
    ko(&["resolve", "-f", "apps.yaml", "--watch"]).cwd(work).env("DOCKER_HOST", docker_host())
}

#[test]
fn ko_local_loads_each_rebuilt_image_into_the_daemon() {
    let work = tempfile::tempdir().unwrap();
    let cmd = watched_module(work.path()).env("KO_DOCKER_REPO", "ko.local");
    let (_watch, before, after) = rebuild_one(cmd, work.path(), "alpha", "local", "ko.local/");
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
    let cmd = watched_module(work.path()).env("KO_DOCKER_REPO", "kind.local").env("KIND_CLUSTER_NAME", &cluster.name);
    let (_watch, before, after) = rebuild_one(cmd, work.path(), "gamma", "kind", "kind.local/");
    let (_, hex) = after.rsplit_once(':').expect("kind.local references end in :<hex>");
    let images = cluster.images(&cluster.nodes[0]);
    assert!(images.contains(&(after.clone(), format!("sha256:{hex}"))), "{after}: {images:?}");
    assert!(images.iter().any(|(name, _)| *name == before), "the first image is there too: {images:?}");
}
