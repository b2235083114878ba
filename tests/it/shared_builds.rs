//! Several packages built with the same settings share one `go build`: each still gets its
//! own binary (also when two commands have the same name), an unchanged binary is not
//! relinked, a compile error is reported for the package that has it, and an image is made
//! as soon as Go has linked its binary.

use std::fs;
use std::path::Path;

use crate::util::*;

/// A module with three commands, two of them named `server`.
fn module(dir: &Path) {
    fs::write(dir.join("go.mod"), "module example.com/fleet\n\ngo 1.22\n").unwrap();
    for (path, says) in [("api/server", "api server"), ("web/server", "web server"), ("cmd/worker", "worker")] {
        let pkg = dir.join(path);
        fs::create_dir_all(&pkg).unwrap();
        fs::write(
            pkg.join("main.go"),
            format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println({says:?}) }}\n"),
        )
        .unwrap();
    }
}

#[test]
fn each_package_gets_its_own_binary_and_unchanged_ones_are_reused() {
    let repo = unique_repo("shared");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    let args = ["build", "--preserve-import-paths", "./api/server", "./web/server", "./cmd/worker"];
    let cache = tempfile::tempdir().unwrap();
    let first = ko(&args).cwd(dir.path()).env("KO_DOCKER_REPO", &repo).env("KOCACHE", cache.path()).run();
    first.assert_success();
    let refs = first.stdout_lines();
    assert_eq!(refs.len(), 3, "{first}");
    for (reference, says) in refs.iter().zip(["api server", "web server", "worker"]) {
        let out = run_image(reference);
        out.assert_success();
        assert_eq!(out.stdout.trim(), says, "{reference}: {out}");
    }

    // One command changes: the others keep their digests.
    fs::write(
        dir.path().join("cmd/worker/main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"worker 2\") }\n",
    )
    .unwrap();
    let second = ko(&args).cwd(dir.path()).env("KO_DOCKER_REPO", &repo).env("KOCACHE", cache.path()).run();
    second.assert_success();
    let again = second.stdout_lines();
    assert_eq!(again[..2], refs[..2], "{second}");
    assert_ne!(again[2], refs[2], "{second}");
    let out = run_image(again[2]);
    assert_eq!(out.stdout.trim(), "worker 2", "{out}");
}

#[test]
fn a_compile_error_names_its_package_and_nothing_is_published() {
    let repo = unique_repo("shared-broken");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    fs::write(dir.path().join("web/server/main.go"), "package main\n\nfunc main() { undefined() }\n").unwrap();
    let build = || {
        ko(&["build", "--bare", "./api/server", "./web/server", "./cmd/worker"])
            .cwd(dir.path())
            .env("KO_DOCKER_REPO", &repo)
            .run()
    };
    let run = build();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("example.com/fleet/web/server"), "the error names the broken package: {run}");
    assert!(run.stderr.contains("undefined"), "Go's message is shown: {run}");
    // Built again alone to find its error, but announced once.
    assert_eq!(run.stderr.matches("Building example.com/fleet/web/server for").count(), 1, "{run}");
    // Images of the two that compiled may have gone up while Go built, but no tag names them.
    assert_untagged(&repo);
    // ...in the repository they are published to, once nothing is broken.
    fs::write(dir.path().join("web/server/main.go"), "package main\n\nfunc main() { println(\"web\") }\n").unwrap();
    build().assert_success();
    assert_tagged(&repo, "latest");
}

/// Sets every file under `dir` as modified an hour ago (out of the window in which a file
/// might change again without its times moving, where Go always runs).
fn age(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            age(&path);
        } else {
            let then = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
            fs::File::options().write(true).open(&path).unwrap().set_modified(then).unwrap();
        }
    }
}

/// A rebuild with nothing changed does not run Go; any change to what Go reads does, even
/// an edit right after the previous build that keeps the file's size.
#[test]
fn go_is_skipped_only_when_nothing_it_reads_changed() {
    let repo = unique_repo("skip");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    age(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let build = |goflags: &str| {
        let run = ko(&["build", "-v", "./cmd/worker"])
            .cwd(dir.path())
            .env("KO_DOCKER_REPO", &repo)
            .env("KOCACHE", cache.path())
            .env("GOFLAGS", goflags)
            .run();
        run.assert_success();
        let skipped = run.stderr.contains("Go was not run");
        (run.stdout_lines()[0].to_string(), skipped)
    };
    let (first, skipped) = build("");
    assert!(!skipped);
    let (again, skipped) = build("");
    assert_eq!(again, first);
    assert!(skipped, "nothing changed, so Go is not run");

    // Same size, same second: Go runs while the file is that fresh.
    let main = dir.path().join("cmd/worker/main.go");
    let text = fs::read_to_string(&main).unwrap();
    fs::write(&main, text.replace("worker", "wOrker")).unwrap();
    let (edited, skipped) = build("");
    assert!(!skipped, "an edit is seen");
    assert_ne!(edited, first);
    assert_eq!(run_image(&edited).stdout.trim(), "wOrker");
    let (_, skipped) = build("");
    assert!(!skipped, "a file modified within the last seconds leaves the decision to Go");

    // Older, the edit is remembered; a new file and a changed GOFLAGS are seen.
    age(dir.path());
    build("");
    let (same, skipped) = build("");
    assert!(skipped);
    assert_eq!(same, edited);
    fs::write(dir.path().join("cmd/worker/extra.go"), "package main\n\nfunc init() { println(\"extra\") }\n").unwrap();
    age(dir.path());
    let (added, skipped) = build("");
    assert!(!skipped, "a new file is seen");
    assert_ne!(added, edited);
    let (_, skipped) = build("-tags=unused");
    assert!(!skipped, "a changed GOFLAGS is seen");
}

/// Go takes an output whose header holds the right build ID as up to date, whatever the rest
/// holds: a cached binary swapped for a damaged copy, or truncated, must be relinked, never
/// put in the image (or fail every later run).
#[test]
fn a_cached_binary_changed_behind_our_back_is_relinked() {
    let repo = unique_repo("damaged-bin");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    age(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let build = || {
        let run = ko(&["build", "./cmd/worker"])
            .cwd(dir.path())
            .env("KO_DOCKER_REPO", &repo)
            .env("KOCACHE", cache.path())
            .run();
        run.assert_success();
        run.stdout_lines()[0].to_string()
    };
    let first = build();
    let bins: Vec<_> = fs::read_dir(cache.path().join("bin")).unwrap().map(|e| e.unwrap().path().join("out")).collect();
    let [binary] = bins.as_slice() else { panic!("one cached binary expected: {bins:?}") };
    let zeroed = |bytes: &mut Vec<u8>| bytes[0x2000..0x2000 + 400_000].fill(0);
    let truncated = |bytes: &mut Vec<u8>| bytes.truncate(1_000_000);
    for damage in [&zeroed as &dyn Fn(&mut Vec<u8>), &truncated] {
        let mut bytes = fs::read(binary).unwrap();
        damage(&mut bytes);
        let copy = binary.with_file_name("copy");
        fs::write(&copy, &bytes).unwrap();
        fs::rename(&copy, binary).unwrap();
        let again = build();
        assert_eq!(again, first, "the same sources give the same image");
        assert_eq!(run_image(&again).stdout.trim(), "worker");
    }
}

/// When Go's work directory is on another filesystem than the cache, Go copies the new
/// binary instead of renaming it; the relinked binary must still be seen as new (a
/// same-size edit must not leave the old layer in the image).
#[test]
fn a_relinked_binary_is_seen_when_go_copies_it_across_filesystems() {
    use std::os::unix::fs::MetadataExt as _;
    let repo = unique_repo("copied");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let other_fs = fs::metadata(work.path()).unwrap().dev() != fs::metadata(cache.path()).unwrap().dev();
    eprintln!("GOTMPDIR on another filesystem than the cache: {other_fs}");
    let build = || {
        let run = ko(&["build", "./cmd/worker"])
            .cwd(dir.path())
            .env("KO_DOCKER_REPO", &repo)
            .env("KOCACHE", cache.path())
            .env("GOTMPDIR", work.path())
            .run();
        run.assert_success();
        run.stdout_lines()[0].to_string()
    };
    let first = build();
    let main = dir.path().join("cmd/worker/main.go");
    let text = fs::read_to_string(&main).unwrap();
    fs::write(&main, text.replace("worker", "WORKER")).unwrap();
    let second = build();
    assert_ne!(second, first);
    assert_eq!(run_image(&second).stdout.trim(), "WORKER");
}

/// The time `label`'s span ended at (ms since the start), from `KUBECTL_KO_TIMINGS` output.
fn ended_at(stderr: &str, label: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.starts_with(&format!("timing: {label}")))
        .filter_map(|l| l.rsplit_once("(ended at ")?.1.strip_suffix(" ms)")?.parse().ok())
        .collect()
}

/// Go renames each binary into its output directory when its link ends; the image is made
/// from then on, while Go still links the others.
#[test]
fn images_are_made_while_go_links_the_other_binaries() {
    let repo = unique_repo("overlap");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("go.mod"), "module example.com/overlap\n\ngo 1.22\n").unwrap();
    let names = ["one", "two", "three", "four", "five", "six"];
    for name in names {
        let pkg = dir.path().join("cmd").join(name);
        fs::create_dir_all(&pkg).unwrap();
        let main = format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println({name:?}) }}\n");
        fs::write(pkg.join("main.go"), main).unwrap();
    }
    let mut args = vec!["build".to_string(), "--bare".to_string()];
    args.extend(names.iter().map(|n| format!("./cmd/{n}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ko(&args).cwd(dir.path()).env("KO_DOCKER_REPO", &repo).env("KUBECTL_KO_TIMINGS", "1").run();
    run.assert_success();
    let go = ended_at(&run.stderr, "go build of 6 packages");
    assert_eq!(go.len(), 1, "one go build for the six: {run}");
    let layers = ended_at(&run.stderr, "binary layer example.com/overlap/cmd/");
    assert_eq!(layers.len(), 6, "{run}");
    assert!(layers.iter().any(|&at| at < go[0]), "a layer was made before Go finished ({go:?}, {layers:?}): {run}");
    for (reference, name) in run.stdout_lines().iter().zip(names) {
        assert_eq!(run_image(reference).stdout.trim(), name, "{reference}");
    }
}

/// The layers in the cache at `cache` but those of `base`: its blobs of more than 64 KiB
/// (configs are smaller).
fn cached_layers(cache: &Path, base: &[String]) -> Vec<String> {
    let mut layers: Vec<String> = fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.metadata().unwrap().len() > 64 * 1024)
        .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
        .filter(|layer| !base.contains(layer))
        .collect();
    layers.sort();
    layers
}

/// The layers of the image `reference`, as the registry has them: the base's, then the app's.
fn layers_of(reference: &str) -> (Vec<String>, String) {
    let manifest = skopeo_inspect(reference, true);
    let mut layers: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let app = layers.pop().unwrap();
    (layers, app)
}

/// `kubectl ko build ./cmd/worker` in `dir` to `repo` with the cache at `cache`: its reference.
fn build_worker(dir: &Path, repo: &str, cache: &Path) -> String {
    let run = ko(&["build", "./cmd/worker"]).cwd(dir).env("KO_DOCKER_REPO", repo).env("KOCACHE", cache).run();
    run.assert_success();
    run.stdout_lines()[0].to_string()
}

/// Makes what `superseded` notes, and the last removal, an hour old: as if the runs that
/// could still use the noted layers had long ended.
fn age_notes(cache: &Path) {
    let list = cache.join("superseded");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let aged: String = fs::read_to_string(&list)
        .unwrap()
        .lines()
        .map(|line| format!("{} {}\n", now - 3600, line.split_once(' ').unwrap().1))
        .collect();
    fs::write(&list, aged).unwrap();
    let stamp = fs::File::options().write(true).open(cache.join("superseded.swept")).unwrap();
    stamp.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).unwrap();
}

/// Each relink makes a new layer; the one it replaces leaves the cache at the end of a later
/// run, once no run can be using it (noted ten minutes before, at most one removal every ten
/// minutes), so a cache does not grow by a layer per rebuild.
#[test]
fn a_replaced_layer_leaves_the_cache_once_no_record_names_it() {
    let repo = unique_repo("replaced");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let main = dir.path().join("cmd/worker/main.go");
    let build = |says: &str| {
        fs::write(&main, format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println({says:?}) }}\n"))
            .unwrap();
        let reference = build_worker(dir.path(), &repo, cache.path());
        assert_eq!(run_image(&reference).stdout.trim(), says, "{reference}");
        reference
    };
    let sorted = |mut layers: Vec<String>| {
        layers.sort();
        layers
    };
    let first = build("worker 1");
    let (base, first_layer) = layers_of(&first);
    assert_eq!(cached_layers(cache.path(), &base), std::slice::from_ref(&first_layer));

    // Replaced moments ago: a run may still be using it, so it stays, noted.
    let second = build("worker 2");
    let (_, second_layer) = layers_of(&second);
    assert_ne!(second_layer, first_layer);
    assert_eq!(cached_layers(cache.path(), &base), sorted(vec![first_layer.clone(), second_layer.clone()]));
    let noted = fs::read_to_string(cache.path().join("superseded")).unwrap();
    assert!(noted.trim().ends_with(&format!(" {first_layer}")), "{noted}");

    // Ten minutes on, the next run removes it.
    age_notes(cache.path());
    let third = build("worker 3");
    let (_, third_layer) = layers_of(&third);
    assert_eq!(cached_layers(cache.path(), &base), sorted(vec![second_layer.clone(), third_layer]));
    let noted = fs::read_to_string(cache.path().join("superseded")).unwrap();
    assert!(noted.trim().ends_with(&format!(" {second_layer}")) && noted.lines().count() == 1, "{noted}");

    // Back to the first text: its layer is made again, the image the same.
    assert_eq!(build("worker 1"), first, "reproducible");
}

/// A change under `kodata/` replaces the package's kodata layer, and the one it replaces
/// leaves the cache as a relinked binary's does; the image serves the new file.
#[test]
fn a_replaced_kodata_layer_leaves_the_cache_too() {
    let repo = unique_repo("kodata-replaced");
    let dir = tempfile::tempdir().unwrap();
    module(dir.path());
    let pkg = dir.path().join("cmd/worker");
    fs::write(
        pkg.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tb, err := os.ReadFile(os.Getenv(\"KO_DATA_PATH\") + \"/page.txt\")\n\tif err != nil {\n\t\tpanic(err)\n\t}\n\tfmt.Print(string(b))\n}\n",
    )
    .unwrap();
    fs::create_dir_all(pkg.join("kodata")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let blob = |digest: &str| cache.path().join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let build = |page: &str| {
        fs::write(pkg.join("kodata/page.txt"), page).unwrap();
        let reference = build_worker(dir.path(), &repo, cache.path());
        assert_eq!(run_image(&reference).stdout, page, "{reference}");
        // The base's layers, then kodata's, then the binary's.
        let (mut layers, _) = layers_of(&reference);
        layers.pop().unwrap()
    };
    let first = build("page 1");
    let second = build("page 2");
    assert_ne!(first, second);
    assert!(blob(&first).exists(), "replaced moments ago, so kept");
    let noted = fs::read_to_string(cache.path().join("superseded")).unwrap();
    assert!(noted.trim().ends_with(&format!(" {first}")), "{noted}");

    age_notes(cache.path());
    let third = build("page 3");
    assert!(!blob(&first).exists(), "{first} should have left the cache");
    assert!(blob(&second).exists() && blob(&third).exists());
}
