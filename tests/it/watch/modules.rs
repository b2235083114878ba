//! `--watch` beyond one module's own files: an image that imports a package of another module
//! of its `go.work` workspace is rebuilt when that package changes, so is one whose `kodata`
//! links to a file outside the module when that file changes, and the stream printed into a
//! file inside the watched module does not start a cycle of its own.

use std::path::Path;
use std::time::Duration;

use super::*;

fn write_all(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn greet(text: &str) -> String {
    format!("package greet\n\n// Text is what hello prints.\nconst Text = \"{text}\"\n")
}

#[test]
fn a_change_in_another_module_of_the_workspace_rebuilds_the_image_that_imports_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    write_all(
        dir,
        &[
            ("go.work", "go 1.21\n\nuse (\n\t./app\n\t./lib\n)\n"),
            ("app/go.mod", "module example.com/app\n\ngo 1.21\n"),
            (
                "app/cmd/hello/main.go",
                "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/lib/greet\"\n)\n\nfunc main() { fmt.Println(greet.Text) }\n",
            ),
            (
                "app/hello.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  containers:\n  - name: hello\n    image: ko://example.com/app/cmd/hello\n",
            ),
            ("lib/go.mod", "module example.com/lib\n\ngo 1.21\n"),
            ("lib/greet/greet.go", &greet("one")),
        ],
    );
    let cmd = ko(&["resolve", "-f", "hello.yaml", "--watch"])
        .cwd(dir.join("app"))
        .env("KO_DOCKER_REPO", unique_repo("watch-workspace"));
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 1 of 1"), "{}", watch.output());

    // lib is a module of its own, outside the app's; only the workspace ties them.
    write(&dir.join("lib/greet/greet.go"), &greet("two"));
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 1 of 1 (example.com/app/cmd/hello)"), "{line}");
    assert!(!line.contains("unchanged"), "the new greeting makes a new image: {line}");
}

/// A file `kodata` links to, outside the module: a watch on the package's directory sees no
/// event when it changes, yet the image serves it.
#[test]
fn a_change_to_a_file_kodata_links_to_rebuilds_the_image() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    write_all(
        dir,
        &[
            ("site/page.txt", "first page"),
            ("app/go.mod", "module example.com/app\n\ngo 1.21\n"),
            (
                "app/cmd/page/main.go",
                "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tb, _ := os.ReadFile(os.Getenv(\"KO_DATA_PATH\") + \"/page.txt\")\n\tfmt.Print(string(b))\n}\n",
            ),
            (
                "app/page.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: page\nspec:\n  containers:\n  - name: page\n    image: ko://example.com/app/cmd/page\n",
            ),
        ],
    );
    std::fs::create_dir_all(dir.join("app/cmd/page/kodata")).unwrap();
    std::os::unix::fs::symlink(dir.join("site/page.txt"), dir.join("app/cmd/page/kodata/page.txt")).unwrap();
    let cmd = ko(&["resolve", "-f", "page.yaml", "--watch"])
        .cwd(dir.join("app"))
        .env("KO_DATA_PATH_ALLOWED_ROOT", dir)
        .env("KO_DOCKER_REPO", unique_repo("watch-kodata-link"));
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 1 of 1"), "{}", watch.output());

    write(&dir.join("site/page.txt"), "second page");
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 1 of 1 (example.com/app/cmd/page)"), "{line}");
    assert!(!line.contains("unchanged"), "the new page makes a new image: {line}");
    let image = watch.wait_out("the second image", |lines| {
        let images: Vec<&String> = lines.iter().filter(|l| l.trim().starts_with("image: ")).collect();
        images.get(1).map(|l| l.trim().trim_start_matches("image: ").to_string())
    });
    assert_eq!(run_image(&image).stdout, "second page", "{image}");
}

/// `resolve -f . --watch > resolved.yaml`: the stream's file is neither a change nor an input
/// (read back, each stream would hold the ones before it).
#[test]
fn the_stream_printed_into_the_watched_module_starts_no_cycle() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    config(dir, "unused", 1);
    let out = std::fs::File::create(dir.join("resolved.yaml")).unwrap();
    let cmd = ko(&["resolve", "-f", ".", "--watch"]).cwd(dir).env("KO_DOCKER_REPO", unique_repo("watch-into-module"));
    let mut watch = Watching::start_into(&cmd, out);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3"), "{}", watch.output());
    // Writing the stream is a change to a file of the module; it must not count. A cycle it
    // started would come within a burst's settling (0.1 s) and its own cycle's time.
    thread::sleep(Duration::from_secs(3));
    assert_eq!(watch.summaries().len(), 1, "{}", watch.output());

    // A real change still counts, and its stream follows the first in the file.
    write(&dir.join("cmd/gamma/main.go"), &source("gamma", "hi"));
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/gamma)"), "{line}");
    thread::sleep(Duration::from_secs(3));
    assert_eq!(watch.summaries().len(), 2, "{}", watch.output());
    let printed = std::fs::read_to_string(dir.join("resolved.yaml")).unwrap();
    assert_eq!(printed.matches("kind: Namespace").count(), 2, "{printed}");
}

/// An edit cannot fix a variable: a first cycle that fails on one ends the watch, as a plain
/// run fails.
#[test]
fn a_first_cycle_that_fails_on_a_variable_ends_the_watch() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    config(dir, "unused", 1);
    let run = ko(&["resolve", "-f", "apps.yaml", "--watch"]).cwd(dir).run();
    run.assert_failure();
    assert!(run.stderr.contains("KO_DOCKER_REPO: it is unset"), "{run}");
    assert!(!run.stderr.contains("still watching"), "{run}");
}
