//! Go's build cache shared through a registry (`kubectl ko gocache`, `KO_GOCACHE_REPO`): a
//! second "machine" (its own `GOCACHE`, `KOCACHE` and `HOME`) compiles nothing the first one
//! compiled; a registry that stops mid-build costs one warning, not the build; a corrupt blob
//! or pack is detected, rebuilt locally and its entries healed; concurrent builds share one
//! cache; `kubectl ko build` passes the cache's warnings on. Compilations are counted in `go build -x` output (through a `KO_GO_PATH` wrapper for `kubectl ko build`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::util::*;

/// A module whose command imports a few packages of the standard library.
fn app(dir: &Path) {
    fs::write(dir.join("go.mod"), "module example.com/gcapp\n\ngo 1.24\n").unwrap();
    fs::write(
        dir.join("main.go"),
        "package main\n\nimport (\n\t\"encoding/json\"\n\t\"fmt\"\n\t\"net/url\"\n)\n\n\
         func main() {\n\tu, _ := url.Parse(\"http://example.com/x\")\n\tb, _ := json.Marshal(map[string]string{\"host\": u.Host})\n\tfmt.Println(string(b))\n}\n",
    )
    .unwrap();
}

/// One machine: its own Go cache, kubectl-ko cache and home.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["gocache", "kocache", "home"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Machine { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// `cmd` in this machine's environment, with the shared cache in `repo`.
    fn setup(&self, cmd: KoCmd, repo: &str) -> KoCmd {
        cmd.env("GOCACHE", self.path("gocache"))
            .env("KOCACHE", self.path("kocache"))
            .env("HOME", self.path("home"))
            .env("KO_GOCACHE_REPO", repo)
            .timeout(Duration::from_secs(300))
    }

    /// `go build -x -o out .` in `src` with `GOCACHEPROG` set to our program.
    fn go_build(&self, src: &Path, repo: &str, out: &str) -> KoCmd {
        let prog = format!("{} gocache", bin("kubectl-ko").display());
        let cmd = KoCmd::program("go").args(["build", "-trimpath", "-x", "-o"]).arg(self.path(out)).arg(".");
        self.setup(cmd, repo).cwd(src).env("GOCACHEPROG", prog)
    }
}

/// A registry of the test's own, whose storage (in `state`) the test may stop or damage, the
/// app's source in `src`, and the cache's repository `gocache` in it. Destructured as
/// `state, own, ...`, so that the registry stops before its storage goes (locals are dropped
/// last bound, first).
struct OwnRegistry {
    state: tempfile::TempDir,
    own: LocalRegistry,
    src: tempfile::TempDir,
    repo: String,
}

impl OwnRegistry {
    fn start() -> OwnRegistry {
        let state = tempfile::tempdir().unwrap();
        let own = LocalRegistry::start(state.path(), &[]);
        let src = tempfile::tempdir().unwrap();
        app(src.path());
        let repo = format!("{}/gocache", own.host);
        OwnRegistry { state, own, src, repo }
    }
}

/// How many packages `go build -x` compiled.
fn compiles(go_x_output: &str) -> usize {
    go_x_output.lines().filter(|l| l.contains("/compile ") && !l.starts_with('#')).count()
}

fn cache_warnings(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("warning: the shared Go build cache")).count()
}

fn sha256_of(path: &Path) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &fs::read(path).unwrap());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn machine_b_compiles_nothing_that_machine_a_built() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let cache_repo = unique_repo("gocache");
    let image_repo = unique_repo("gocache-app");
    // `go build -x` of kubectl ko build's own go, logged by a wrapper.
    let wrapper = src.path().join("go-x.sh");
    write_executable(&wrapper, "#!/bin/sh\nexec go \"$@\" 2>>\"$GO_X_LOG\"\n");

    let build = |machine: &Machine| {
        let cmd = machine
            .setup(ko(&["build", "."]), &cache_repo)
            .cwd(src.path())
            .env("KO_DOCKER_REPO", &image_repo)
            .env("KO_GO_PATH", &wrapper)
            .env("GOFLAGS", "-x")
            .env("GO_X_LOG", machine.path("go-x.log"));
        let run = cmd.run();
        run.assert_success();
        let log = fs::read_to_string(machine.path("go-x.log")).unwrap();
        (run, log)
    };
    let (a, b) = (Machine::new(), Machine::new());
    let (first, log_a) = build(&a);
    assert!(compiles(&log_a) > 10, "machine A compiles the standard library cold: {first}\n{log_a}");
    let (second, log_b) = build(&b);
    assert_eq!(compiles(&log_b), 0, "machine B compiles nothing A built: {second}\n{log_b}");
    assert_eq!(first.stdout_lines(), second.stdout_lines(), "the same image: {first}\n{second}");
    assert_eq!(cache_warnings(&log_a) + cache_warnings(&log_b), 0, "{log_a}\n{log_b}");
    // The cache is in the registry: entries in shard manifests, tagged by the first digit.
    let (host, path) = cache_repo.split_once('/').unwrap();
    assert!(has_shards(&format!("http://{host}/v2/{path}/tags/list")), "no shard-v2-<digit> tags in {cache_repo}");
}

#[test]
fn plain_go_build_shares_the_cache_through_gocacheprog() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let repo = unique_repo("gocache-plain");
    let (a, b) = (Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &repo, "app").run();
    first.assert_success();
    assert!(compiles(&first.stderr) > 10, "{first}");
    // KUBECTL_KO_TIMINGS reaches the cache program through Go: it says where Go waited.
    let second = b.go_build(src.path(), &repo, "app").env("KUBECTL_KO_TIMINGS", "1").run();
    second.assert_success();
    assert_eq!(compiles(&second.stderr), 0, "{second}");
    let waits = second.stderr.lines().find(|l| l.starts_with("timing: Go build cache: ")).unwrap_or_default();
    assert!(waits.contains(" misses in ") && waits.contains(" puts stored in "), "{second}");
    assert!(!waits.starts_with("timing: Go build cache: 0 hits"), "machine B hits: {waits}");
    assert_eq!(sha256_of(&a.path("app")), sha256_of(&b.path("app")));
    let out = Command::new(b.path("app")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"host":"example.com"}"#);
}

/// The map from actions to outputs costs a build at most 16 lookups, however many actions
/// it has: a cold build reads each shard once to look, once to merge and once to check its
/// write, and puts each once; a second machine reads them and writes almost nothing.
#[test]
fn a_build_reads_and_writes_each_shard_of_entries_once() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let proxy = FaultProxy::start(&registry(), vec![]);
    let repo = format!("{}/{}", proxy.host, unique_name("gocache-shards"));
    let (a, b) = (Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &repo, "app").run();
    first.assert_success();
    let (puts, gets) = (proxy.manifest_requests("PUT"), proxy.manifest_requests("GET"));
    assert!(compiles(&first.stderr) > 10, "{first}");
    assert!(!puts.is_empty() && puts.len() <= 16, "one put per shard: {puts:#?}");
    assert!(puts.iter().all(|p| p.contains("/manifests/shard-v2-")), "{puts:#?}");
    assert!(gets.len() <= 3 * 16, "{} manifest reads: {gets:#?}", gets.len());

    let second = b.go_build(src.path(), &repo, "app").run();
    second.assert_success();
    assert_eq!(compiles(&second.stderr), 0, "{second}");
    // Go puts an entry or two even when everything hits: each costs a read of its shard, and
    // a put and a read back unless the shard already has it.
    let (puts, gets) = (&proxy.manifest_requests("PUT")[puts.len()..], &proxy.manifest_requests("GET")[gets.len()..]);
    assert!(puts.len() <= 2 && gets.len() <= 16 + 4, "B's puts {puts:#?}, B's reads {gets:#?}");
    assert_eq!(cache_warnings(&first.stderr) + cache_warnings(&second.stderr), 0, "{first}\n{second}");
}

#[test]
fn a_registry_stopped_mid_build_costs_one_warning_not_the_build() {
    let OwnRegistry { state, own, src, repo } = OwnRegistry::start();
    let machine = Machine::new();
    let mut cmd = machine.go_build(src.path(), &repo, "app").command();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Stop the registry once the build has pushed its first output (entries wait for the end).
    let layers = state.path().join("data/docker/registry/v2/repositories/gocache/_layers");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !layers.is_dir() {
        assert!(Instant::now() < deadline, "the build pushed nothing to {repo} in 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    own.stop();
    assert!(child.try_wait().unwrap().is_none(), "the build was still running when the registry stopped");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the build succeeds without its registry: {stderr}");
    assert_eq!(cache_warnings(&stderr), 1, "one warning: {stderr}");
    assert!(machine.path("app").is_file());
}

/// The first shard is read alone as Go starts, then the other fifteen at once. One of those
/// that fails then is not the registry failing: it is read again at the first lookup that
/// needs it, and the second machine still compiles nothing, without a warning.
#[test]
fn a_shard_that_fails_as_go_starts_is_read_again_when_needed() {
    let OwnRegistry { state: _state, own, src, repo } = OwnRegistry::start();
    let (a, b) = (Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &repo, "app").run();
    first.assert_success();
    // 400 is not retried: each of shards 1 to f fails once, at the read as Go starts.
    let fail_once = |digit: char| {
        let fault = Fault::Status { code: 400, retry_after: None };
        Rule::new(Some("GET"), &format!("/manifests/shard-v2-{digit}"), fault)
    };
    let proxy = FaultProxy::start(&own.host, "123456789abcdef".chars().map(fail_once).collect());
    let second = b.go_build(src.path(), &format!("{}/gocache", proxy.host), "app").run();
    second.assert_success();
    assert_eq!(proxy.faulted().len(), 15, "every shard but the first failed once: {second}");
    assert_eq!(compiles(&second.stderr), 0, "machine B compiles nothing A built: {second}");
    assert_eq!(cache_warnings(&second.stderr), 0, "{second}");
}

/// Some registries (Artifactory) answer 403, not 404, for a tag they do not have. A cold
/// cache's shards read so are empty, not a failing registry: no warning, every output is
/// stored, and a second machine compiles nothing.
#[test]
fn shards_a_registry_answers_403_for_are_new_ones() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let forbidden = Fault::Status { code: 403, retry_after: None };
    let proxy =
        FaultProxy::start(&registry(), vec![Rule::new(Some("GET"), "/manifests/shard-v2-", forbidden).times(16)]);
    let name = unique_name("gocache-403");
    let (a, b) = (Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &format!("{}/{name}", proxy.host), "app").run();
    first.assert_success();
    assert_eq!(proxy.faulted().len(), 16, "each shard's first read was refused: {first}");
    assert_eq!(cache_warnings(&first.stderr), 0, "{first}");
    let second = b.go_build(src.path(), &format!("{}/{name}", registry()), "app").run();
    second.assert_success();
    assert_eq!(compiles(&second.stderr), 0, "machine B compiles nothing A built: {second}");
}

/// `kubectl ko build` keeps Go's output to itself when Go succeeds, but not the cache
/// program's warning: a cache registry that is down is said once, and the image is built.
#[test]
fn kubectl_ko_build_passes_the_cache_warning_on() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let machine = Machine::new();
    // Nothing listens on port 1.
    let run = machine
        .setup(ko(&["build", "--sbom=none", "."]), "127.0.0.1:1/gocache")
        .cwd(src.path())
        .env("KO_DOCKER_REPO", unique_repo("gocache-warned"))
        .run();
    run.assert_success();
    assert_eq!(cache_warnings(&run.stderr), 1, "{run}");
    assert!(run.stderr.contains("127.0.0.1:1/gocache is off for this build"), "{run}");
    assert_eq!(run.stdout_lines().len(), 1, "{run}");
}

/// Settings the cache program would refuse are refused by `build` before anything is built,
/// whether Go has anything to compile or not.
#[test]
fn bad_cache_settings_are_refused_before_the_build() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let machine = Machine::new();
    let repo = unique_repo("gocache-refused");
    let cases = [
        ("127.0.0.1:1/gocache", Some("lots"), "KO_GOCACHE_MAX_SIZE=\"lots\" is not a size"),
        ("127.0.0.1:1", None, "not a repository in it"),
        ("http://127.0.0.1:1/gocache", None, "without a scheme"),
    ];
    for (value, max_size, needle) in cases {
        let mut cmd =
            machine.setup(ko(&["build", "--sbom=none", "."]), value).cwd(src.path()).env("KO_DOCKER_REPO", &repo);
        if let Some(size) = max_size {
            cmd = cmd.env("KO_GOCACHE_MAX_SIZE", size);
        }
        let run = cmd.run();
        run.assert_failure();
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: ") && last.contains(needle), "{run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
}

/// A relative `KOCACHE` names one cache, taken from where kubectl ko runs, also for a build
/// whose `dir` (where Go runs, and starts the cache program) is elsewhere.
#[test]
fn a_relative_kocache_is_one_cache_for_a_build_in_another_directory() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("go.mod"), "module example.com/outer\n\ngo 1.24\n").unwrap();
    let sub = root.path().join("sub");
    fs::create_dir_all(&sub).unwrap();
    app(&sub);
    fs::write(root.path().join(".ko.yaml"), "builds:\n- id: sub\n  dir: ./sub\n  main: .\n").unwrap();
    let machine = Machine::new();
    let run = machine
        .setup(ko(&["build", "--sbom=none", "./sub"]), &unique_repo("gocache-relative"))
        .cwd(root.path())
        .env("KOCACHE", "kc")
        .env("KO_DOCKER_REPO", unique_repo("gocache-relative-app"))
        .run();
    run.assert_success();
    assert_eq!(cache_warnings(&run.stderr), 0, "{run}");
    assert!(root.path().join("kc/gocache").is_dir(), "the cache program used ./kc: {run}");
    assert!(!sub.join("kc").exists(), "nothing made a cache in the build's dir: {run}");
    let out = run_image(run.stdout_lines()[0]);
    out.assert_success();
    assert_eq!(out.stdout.trim(), r#"{"host":"example.com"}"#, "{out}");
}

/// True when `url` answers 200 with a tag list that has a shard's tag.
fn has_shards(url: &str) -> bool {
    let out = Command::new("curl").args(["-fsS", url]).output();
    matches!(out, Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\"shard-v2-"))
}

#[test]
fn a_corrupt_blob_is_detected_rebuilt_locally_not_used_and_healed() {
    let OwnRegistry { state, own: _own, src, repo } = OwnRegistry::start();
    let (a, b) = (Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &repo, "app").run();
    first.assert_success();

    // Corrupt the largest output archive the registry holds (same size, other bytes).
    let (victim, digest) = largest_archive(&state.path().join("data")).expect("the registry holds Go archives");
    corrupt_middle(&victim);

    let second = b.go_build(src.path(), &repo, "app").run();
    second.assert_success();
    assert!(second.stderr.contains(&format!("corrupt blob sha256:{digest}")), "detected: {second}");
    let rebuilt = compiles(&second.stderr);
    assert!(rebuilt >= 1 && rebuilt < compiles(&first.stderr), "only what was corrupt is rebuilt: {second}");
    assert_eq!(sha256_of(&a.path("app")), sha256_of(&b.path("app")), "the same binary");
    // B's local copy of that output is Go's own, not the registry's corrupt bytes.
    let local = b.path("kocache").join("gocache/o").join(&digest[..2]).join(&digest);
    assert_eq!(sha256_of(&local), digest);
    // B pushed that entry again in another form: a third machine gets it whole.
    let c = Machine::new();
    let third = c.go_build(src.path(), &repo, "app").run();
    third.assert_success();
    assert_eq!(compiles(&third.stderr), 0, "the entry is healed: {third}");
    assert_eq!(cache_warnings(&third.stderr), 0, "{third}");
}

/// A pack (many outputs in one blob) that is corrupt costs one warning; the outputs in it are
/// compiled locally, their entries pushed again, and a third machine gets them whole.
#[test]
fn a_corrupt_pack_costs_one_warning_and_its_outputs_are_rebuilt_and_healed() {
    let OwnRegistry { state, own, src, repo } = OwnRegistry::start();
    let (a, b, c) = (Machine::new(), Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &repo, "app").run();
    first.assert_success();

    // The largest pack the shards name, corrupted in the registry's storage.
    let pack = largest_pack(&own.host);
    let hex = pack.trim_start_matches("sha256:");
    let data = state.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data");
    corrupt_middle(&data);

    let second = b.go_build(src.path(), &repo, "app").run();
    second.assert_success();
    let warnings: Vec<&str> = second.stderr.lines().filter(|l| l.contains(&format!("corrupt blob {pack}"))).collect();
    assert_eq!(warnings.len(), 1, "one warning for the pack: {second}");
    let rebuilt = compiles(&second.stderr);
    assert!(rebuilt >= 1 && rebuilt < compiles(&first.stderr), "only what was in the pack is rebuilt: {second}");
    assert_eq!(sha256_of(&a.path("app")), sha256_of(&b.path("app")), "the same binary");
    let third = c.go_build(src.path(), &repo, "app").run();
    third.assert_success();
    assert_eq!(compiles(&third.stderr), 0, "the entries are healed: {third}");
    assert_eq!(cache_warnings(&third.stderr), 0, "{third}");
}

/// Shards whose entries are wrong (a pack offset past the pack's end, inline bytes that are
/// not the output's; a tool or an older writer may leave such) cost one warning, not the
/// registry tier: what they named is compiled, the rest still comes from the registry, and the
/// entries are written again so that a third machine gets them whole.
#[test]
fn wrong_entries_cost_one_warning_and_are_written_again() {
    let OwnRegistry { state: _state, own, src, repo } = OwnRegistry::start();
    let (a, b, c) = (Machine::new(), Machine::new(), Machine::new());
    let first = a.go_build(src.path(), &repo, "app").run();
    first.assert_success();

    let (mut packed, mut inline) = (0, 0);
    for digit in "0123456789abcdef".chars() {
        let url = format!("http://{}/v2/gocache/manifests/shard-v2-{digit}", own.host);
        let media_type = "application/vnd.oci.image.manifest.v1+json";
        let got = Command::new("curl").args(["-fsS", "-H", &format!("Accept: {media_type}"), &url]).output().unwrap();
        let Ok(mut manifest) = serde_json::from_slice::<serde_json::Value>(&got.stdout) else { continue };
        let key = "dev.kubectl-ko.gocache.entries";
        let entries = manifest["annotations"][key].as_str().unwrap().to_string();
        let spoilt: Vec<String> = entries
            .lines()
            .map(|line| {
                let mut fields: Vec<String> = line.split(' ').map(str::to_string).collect();
                let form = fields.last_mut().unwrap();
                if form.starts_with("p:") && packed < 3 {
                    // p:<hex>:<size>:<offset>, the offset moved past any pack's end.
                    packed += 1;
                    let (head, _) = form.rsplit_once(':').unwrap();
                    *form = format!("{head}:999999999");
                } else if form.starts_with("i:") && inline < 1 {
                    inline += 1;
                    *form = "i:bm90IHRoZSBvdXRwdXQ=".to_string();
                }
                fields.join(" ")
            })
            .collect();
        manifest["annotations"][key] = spoilt.join("\n").into();
        let put = Command::new("curl")
            .args(["-fsS", "-X", "PUT", "-H", &format!("Content-Type: {media_type}"), "--data-binary", "@-", &url])
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(manifest.to_string().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(put.status.success(), "PUT {url}: {}", String::from_utf8_lossy(&put.stderr));
    }
    assert!(packed >= 1 && inline == 1, "the first build wrote packed and inline entries ({packed}, {inline})");

    let second = b.go_build(src.path(), &repo, "app").run();
    second.assert_success();
    let warnings: Vec<&str> = second.stderr.lines().filter(|l| l.contains("warning: the shared Go build")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {second}");
    assert!(warnings[0].contains("entries that do not give their outputs"), "{second}");
    let rebuilt = compiles(&second.stderr);
    assert!(rebuilt >= 1 && rebuilt < compiles(&first.stderr), "the tier stays on for the rest: {second}");
    assert_eq!(sha256_of(&a.path("app")), sha256_of(&b.path("app")), "the same binary");
    let third = c.go_build(src.path(), &repo, "app").run();
    third.assert_success();
    assert_eq!(compiles(&third.stderr), 0, "the entries are written again: {third}");
    assert_eq!(cache_warnings(&third.stderr), 0, "{third}");
}

/// The blobs the shards of `host`'s repository `gocache` name: shard, media type, size, digest.
fn shard_layers(host: &str) -> Vec<(char, String, u64, String)> {
    let mut layers = Vec::new();
    for digit in "0123456789abcdef".chars() {
        let url = format!("http://{host}/v2/gocache/manifests/shard-v2-{digit}");
        let out = Command::new("curl")
            .args(["-fsS", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", &url])
            .output()
            .unwrap();
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { continue };
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let field = |name: &str| layer[name].as_str().unwrap().to_string();
            layers.push((digit, field("mediaType"), layer["size"].as_u64().unwrap(), field("digest")));
        }
    }
    layers
}

/// The digest of the largest pack the shards of `host`'s repository `gocache` name.
fn largest_pack(host: &str) -> String {
    let mut packs: Vec<(u64, String)> = shard_layers(host)
        .into_iter()
        .filter(|(_, media_type, ..)| media_type == "application/vnd.kubectl-ko.gocache.pack.v1")
        .map(|(_, _, size, digest)| (size, digest))
        .collect();
    packs.sort();
    packs.pop().expect("the first build made packs").1
}

/// A blob deleted from the repository (a cleanup script, a retention rule) while shards still
/// name it: a miss for a machine that needs it, and the next machine that writes a shard drops
/// the entries naming it instead of being refused (`MANIFEST_BLOB_UNKNOWN`) on every write.
#[test]
fn a_deleted_blob_is_a_miss_and_the_next_shard_write_drops_its_entries() {
    let OwnRegistry { state: _state, own, src, repo } = OwnRegistry::start();
    let (a, b, c) = (Machine::new(), Machine::new(), Machine::new());
    a.go_build(src.path(), &repo, "app").run().assert_success();
    let pack = largest_pack(&own.host);
    let naming = || shard_layers(&own.host).iter().filter(|(.., digest)| *digest == pack).count();
    let before = naming();
    let url = format!("http://{}/v2/gocache/blobs/{pack}", own.host);
    let deleted = Command::new("curl").args(["-fsS", "-X", "DELETE", &url]).output().unwrap();
    assert!(deleted.status.success(), "DELETE {url}: {}", String::from_utf8_lossy(&deleted.stderr));

    // B builds another program, which needs some of what the pack held but not all of it, so
    // the shards it writes still name the pack.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("go.mod"), "module example.com/small\n\ngo 1.24\n").unwrap();
    fs::write(other.path().join("main.go"), "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(1) }\n")
        .unwrap();
    let second = b.go_build(other.path(), &repo, "small").run();
    second.assert_success();
    assert_eq!(cache_warnings(&second.stderr), 0, "the shards were written: {second}");
    let after_b = naming();
    assert!(after_b < before, "the shards B wrote no longer name {pack} ({before} did, {after_b} do)");

    // C builds A's program: the deleted pack's outputs that B did not put again are compiled,
    // and the shards holding their entries, written again, no longer name the pack.
    let third = c.go_build(src.path(), &repo, "app").run();
    third.assert_success();
    assert_eq!(cache_warnings(&third.stderr), 0, "{third}");
    assert!(compiles(&third.stderr) >= 1, "what only the pack held is compiled: {third}");
    assert_eq!(sha256_of(&a.path("app")), sha256_of(&c.path("app")), "the same binary");
    assert_eq!(naming(), 0, "no shard names {pack}");
}

/// Overwrites 16 bytes in the middle of a file: the same size, other bytes.
fn corrupt_middle(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 16].copy_from_slice(b"corrupted bytes!");
    fs::write(path, bytes).unwrap();
}

/// The largest blob of a distribution registry's storage that is a Go archive, with its hex.
fn largest_archive(root: &Path) -> Option<(PathBuf, String)> {
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    let mut best: Option<(u64, PathBuf, String)> = None;
    for fan in fs::read_dir(blobs).ok()?.flatten() {
        for blob in fs::read_dir(fan.path()).ok()?.flatten() {
            let data = blob.path().join("data");
            let bytes = fs::read(&data).unwrap_or_default();
            let size = bytes.len() as u64;
            if bytes.starts_with(b"!<arch>") && best.as_ref().is_none_or(|(s, _, _)| size > *s) {
                best = Some((size, data, blob.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    best.map(|(_, path, hex)| (path, hex))
}

#[test]
fn concurrent_builds_share_one_cache() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let repo = unique_repo("gocache-concurrent");
    let machine = Machine::new();
    // Two builds at once on one machine's cache (one KOCACHE, Go caches of their own).
    let spawn = |out: &str, gocache: &str| {
        let cmd = machine.go_build(src.path(), &repo, out).env("GOCACHE", machine.path(gocache));
        let mut command = cmd.command();
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    fs::create_dir_all(machine.path("gocache2")).unwrap();
    let (one, two) = (spawn("app1", "gocache"), spawn("app2", "gocache2"));
    for child in [one, two] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(cache_warnings(&stderr), 0, "{stderr}");
    }
    assert_eq!(sha256_of(&machine.path("app1")), sha256_of(&machine.path("app2")));
    // What they left in the registry is whole: a third machine compiles nothing.
    let other = Machine::new();
    let third = other.go_build(src.path(), &repo, "app").run();
    third.assert_success();
    assert_eq!(compiles(&third.stderr), 0, "{third}");
}

#[test]
fn a_registry_that_refuses_pushes_is_still_read() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let (a, b) = (Machine::new(), Machine::new());
    let first = {
        let writable = LocalRegistry::start(state.path(), &[]);
        let run = a.go_build(src.path(), &format!("{}/gocache", writable.host), "app").run();
        writable.stop();
        run
    };
    first.assert_success();
    // The same storage, read-only (as for a runner with pull access only); the app changed.
    let readonly = LocalRegistry::start(state.path(), &["--readonly"]);
    let main = src.path().join("main.go");
    fs::write(&main, fs::read_to_string(&main).unwrap().replace("example.com/x", "example.com/y")).unwrap();
    let second = b.go_build(src.path(), &format!("{}/gocache", readonly.host), "app").run();
    second.assert_success();
    assert_eq!(compiles(&second.stderr), 1, "only the changed package compiles: {second}");
    let read_only = second.stderr.lines().filter(|l| l.contains("is read-only for this build")).count();
    assert_eq!((read_only, cache_warnings(&second.stderr)), (1, 1), "one warning: {second}");
}
