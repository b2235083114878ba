//! Running `go build`: one or several packages into their stable places in the cache, or
//! not at all when nothing Go reads changed (see `fingerprint`).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::slot::{BuildRecord, Built, binary_slot, held_path, hold_recorded, looks_like_a_program};
use super::{BuildPlan, GoBuildError, GoTool, Package, blocking, fingerprint};
use crate::cache::{Cache, CacheError};
use crate::platform::Platform;

impl GoTool {
    /// Runs `go build` for one package and returns its binary, kept at a stable place in the
    /// cache so that Go skips relinking an unchanged one. Go's output is shown when it fails.
    pub async fn build(
        &self,
        package: &Package,
        platform: &Platform,
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<(Built, Vec<String>), GoBuildError> {
        let cmdline = std::iter::once("go".to_string()).chain(plan.args.iter().cloned()).collect();
        match self.build_into(&[(package, platform)], plan, cache, None).await? {
            Ok(mut built) => Ok((built.remove(0), cmdline)),
            Err((status, text)) => {
                for line in text.lines() {
                    crate::output::step(line);
                }
                Err(GoBuildError::Failed {
                    import_path: package.import_path.clone(),
                    platform: platform.to_string(),
                    status,
                })
            }
        }
    }

    /// Runs one `go build` for several packages that share a plan (so Go loads and checks
    /// their common dependencies once). `None` when it failed or did not write what was
    /// expected: the caller then builds each package alone, which reports any error exactly.
    ///
    /// `early` is given each binary Go relinks (by its index in `items`) as soon as its link
    /// ends, while Go still links the others, so that its image can be made meanwhile; the
    /// result holds it too.
    pub async fn build_many(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
        early: &Early<'_>,
    ) -> Result<Option<Vec<Built>>, GoBuildError> {
        Ok(self.build_into(items, plan, cache, Some(early)).await?.ok())
    }

    /// Brings the packages' binaries up to date: without running Go when a snapshot of the
    /// build's inputs equals the one recorded with the binaries (see `fingerprint`), else with
    /// [`GoTool::run_go_build`]. `Err` holds Go's output.
    async fn build_into(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
        early: Option<&Early<'_>>,
    ) -> Result<Result<Vec<Built>, (String, String)>, GoBuildError> {
        // Nothing Go reads changed since it made these binaries: they are up to date.
        let snapshot = {
            let _span = crate::timing::span(|| "build snapshot".to_string());
            let (go, walked) = (self.go.clone(), plan.clone());
            blocking(move || fingerprint::snapshot(&go, &walked)).await.flatten()
        };
        let slots: Vec<PathBuf> =
            items.iter().map(|(p, platform)| binary_slot(cache, p, platform, plan)).collect::<Result<_, _>>()?;
        let held = cache.run_temp_dir()?;
        if let Some(snapshot) = &snapshot
            && let Some(built) = hold_recorded(cache, &slots, plan, snapshot, &held)
        {
            for (package, platform) in items {
                crate::output::detail(format!(
                    "{} for {platform} is up to date: nothing go build reads changed, so Go was not run",
                    package.import_path
                ));
            }
            return Ok(Ok(built));
        }
        let built = self.run_go_build(items, plan, cache, &held, early).await?;
        if let Ok(built) = &built {
            for b in built {
                BuildRecord::write(cache, &b.slot, b.path(), plan, snapshot.as_deref());
            }
        }
        Ok(built)
    }

    /// Runs `go build -o DIR/ pkg…` into a fresh directory of the cache where each package's
    /// stable binary is hard-linked under the name Go gives it. Go leaves an up-to-date
    /// binary alone and, when it relinks, replaces the entry with a new file (it renames over
    /// it, or removes it and writes a new one), so a new inode tells a relinked binary apart,
    /// and the stable copy is never written in place; a new file then moves to the stable place.
    ///
    /// With `early` and several packages, the directory is watched while Go runs: Go links
    /// each binary in its work directory and renames it into `DIR` when the link is done, so
    /// a new inode under an expected name is a whole binary, handed over at once.
    async fn run_go_build(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
        held: &Path,
        early: Option<&Early<'_>>,
    ) -> Result<Result<Vec<Built>, (String, String)>, GoBuildError> {
        let dir = cache.temp_dir()?;
        let io = |path: &Path, source| CacheError { path: path.to_path_buf(), source };
        let mut expected: Vec<Expected> = Vec::with_capacity(items.len());
        for (package, platform) in items {
            let slot = binary_slot(cache, package, platform, plan)?;
            let name = exec_name(&package.import_path, platform);
            let link = dir.path().join(&name);
            // Without the link (another filesystem, damage Go would refuse to write over, or a
            // file this cache's records do not vouch for), Go just relinks.
            let linked = (looks_like_a_program(&slot) && BuildRecord::vouches_for(cache, &slot, plan))
                .then(|| std::fs::hard_link(&slot, &link).ok().and_then(|()| std::fs::metadata(&link).ok()))
                .flatten();
            expected.push(Expected { name, slot, linked: linked.map(|m| m.ino()), handed: None });
        }
        let mut cmd = self.command(&plan.dir);
        cmd.env_clear().envs(plan.env.iter().map(|(k, v)| (k, v)));
        let mut out_dir = dir.path().as_os_str().to_owned();
        out_dir.push("/");
        cmd.args(&plan.args).arg("-o").arg(out_dir);
        cmd.args(items.iter().map(|(p, _)| p.import_path.as_str()));
        // Go's own work directory goes with this run's temporary files (removed when the run
        // is stopped, or by the next run after a kill), unless the user chose a place.
        let work = match plan.env.iter().find(|(k, _)| k == "GOTMPDIR") {
            Some((_, user)) => PathBuf::from(user),
            None => {
                let work = cache.run_temp_dir()?;
                cmd.env("GOTMPDIR", &work);
                work
            }
        };
        let early = early.filter(|_| items.len() > 1 && renames_into(&work, dir.path()));
        let run = self.output(&mut cmd);
        let output = match early {
            None => run.await?,
            Some(early) => {
                tokio::pin!(run);
                let changes = DirChanges::watch(dir.path());
                let mut tick = tokio::time::interval(changes.look_every());
                loop {
                    tokio::select! {
                        output = &mut run => break output?,
                        () = changes.next() => {}
                        _ = tick.tick() => {}
                    }
                    hand_over_linked(dir.path(), held, &mut expected, early).map_err(|(p, e)| io(&p, e))?;
                }
            }
        };
        if !output.status.success() {
            // What Go linked since the last look is whole too.
            if let Some(early) = early {
                hand_over_linked(dir.path(), held, &mut expected, early).map_err(|(p, e)| io(&p, e))?;
            }
            let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
            return Ok(Err((output.status.to_string(), text)));
        }
        // The cache program's warnings and timings, which a build that succeeds would drop.
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| crate::gocache::is_message(l))
            .for_each(crate::output::step);
        // Every entry, and whether Go wrote it (not one of our untouched links).
        let entries: Vec<(String, bool)> = std::fs::read_dir(dir.path())
            .map_err(|e| io(dir.path(), e))?
            .filter_map(|e| e.ok())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ino = std::fs::symlink_metadata(e.path()).ok().filter(|m| m.is_file()).map(|m| m.ino());
                let ours = expected.iter().any(|x| x.name == name && x.linked.is_some() && x.linked == ino);
                (name, ino.is_some() && !ours)
            })
            .collect();
        let written: Vec<&String> = entries.iter().filter(|(_, new)| *new).map(|(n, _)| n).collect();
        // For one package, the one file Go wrote is its binary whatever its name.
        if let ([only], [file]) = (expected.as_mut_slice(), written.as_slice()) {
            only.name.clone_from(file);
        }
        // Anything Go wrote under another name means the names were guessed wrong.
        let found = |x: &Expected| x.handed.is_some() || entries.iter().any(|(n, _)| *n == x.name);
        if written.iter().any(|f| !expected.iter().any(|x| x.name == **f)) || expected.iter().any(|x| !found(x)) {
            let names: Vec<&String> = entries.iter().map(|(n, _)| n).collect();
            let wanted: Vec<&String> = expected.iter().map(|x| &x.name).collect();
            return Ok(Err(("unexpected output".into(), format!("go build wrote {names:?}, not {wanted:?}"))));
        }
        let mut built = Vec::with_capacity(expected.len());
        for x in expected {
            let b = match x.handed {
                Some(b) => b,
                None if written.contains(&&x.name) => x.keep(dir.path(), held).map_err(|(p, e)| io(&p, e))?,
                // The link made before the build, to the binary Go left as it was.
                None => {
                    let path = held_path(held);
                    std::fs::rename(dir.path().join(&x.name), &path).map_err(|e| io(&path, e))?;
                    Built::held(x.slot, false, path)
                }
            };
            built.push(b);
        }
        Ok(Ok(built))
    }
}

/// What is told of each binary handed over while Go still runs: its index among the packages
/// built together, and the binary.
pub type Early<'a> = dyn Fn(usize, Built) + Send + Sync + 'a;

/// How often the output directory is looked at while Go links when the system cannot tell
/// of changes to it: a look is a `stat` per binary not yet handed over, and a binary waits at
/// most this long after its link.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// How often it is looked at anyway when the system tells of changes (inotify), in case a
/// notice is lost: a queue that overflowed, a watch that stopped.
const LOOK_ANYWAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Notices of changes to the directory Go links into, from the system's file watcher; a
/// look at the directory follows each. Where there is none (or it cannot start), the
/// directory is polled every [`POLL_INTERVAL`]. Polling cost ten binaries' build about 600
/// wake-ups and thousands of `stat`s, some 30 ms of CPU beside Go's links.
struct DirChanges {
    watch: Option<(notify::RecommendedWatcher, std::sync::Arc<tokio::sync::Notify>)>,
}

impl DirChanges {
    fn watch(dir: &Path) -> DirChanges {
        use notify::Watcher as _;
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let tell = changed.clone();
        // Any notice, even an error (an overflowed queue), is a reason to look.
        let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| tell.notify_one());
        let watch = watcher.ok().and_then(|mut w| {
            let kind = <notify::RecommendedWatcher as notify::Watcher>::kind();
            let native = kind != notify::WatcherKind::PollWatcher && kind != notify::WatcherKind::NullWatcher;
            (native && w.watch(dir, notify::RecursiveMode::NonRecursive).is_ok()).then_some((w, changed))
        });
        DirChanges { watch }
    }

    fn look_every(&self) -> std::time::Duration {
        if self.watch.is_some() { LOOK_ANYWAY } else { POLL_INTERVAL }
    }

    /// The next notice; never, when polling.
    async fn next(&self) {
        match &self.watch {
            Some((_, changed)) => changed.notified().await,
            None => std::future::pending().await,
        }
    }
}

/// One binary `go build -o DIR/` is expected to write.
struct Expected {
    /// The file name Go gives it in `DIR`.
    name: String,
    /// Its stable place in the cache.
    slot: PathBuf,
    /// The inode of the link to the stable place made before the build.
    linked: Option<u64>,
    /// Moved to the stable place and handed over while Go ran.
    handed: Option<Built>,
}

impl Expected {
    /// Holds the binary Go wrote into `dir` for this run, then moves it to its stable place.
    /// In that order: another run may rename its own binary onto the stable place at any
    /// time, and this run must go on with the one its Go linked.
    fn keep(&self, dir: &Path, held: &Path) -> Result<Built, (PathBuf, std::io::Error)> {
        let written = dir.join(&self.name);
        let path = held_path(held);
        std::fs::hard_link(&written, &path).map_err(|e| (path.clone(), e))?;
        let built = Built::held(self.slot.clone(), true, path);
        std::fs::rename(&written, &self.slot).map_err(|e| (self.slot.clone(), e))?;
        Ok(built)
    }
}

/// Moves each binary Go has finished to its stable place and hands it over.
fn hand_over_linked(
    dir: &Path,
    held: &Path,
    expected: &mut [Expected],
    early: &Early<'_>,
) -> Result<(), (PathBuf, std::io::Error)> {
    for (index, x) in expected.iter_mut().enumerate().filter(|(_, x)| x.handed.is_none()) {
        let path = dir.join(&x.name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() || Some(meta.ino()) == x.linked {
            continue;
        }
        let built = x.keep(dir, held)?;
        x.handed = Some(built.clone());
        early(index, built);
    }
    Ok(())
}

/// Whether Go, working in `work`, puts a finished binary into `dir` by renaming it, so that
/// it appears whole: both on one filesystem, and `dir` not set-group-ID (Go copies into such
/// a directory to keep its group).
fn renames_into(work: &Path, dir: &Path) -> bool {
    match (std::fs::metadata(work), std::fs::metadata(dir)) {
        (Ok(w), Ok(d)) => w.dev() == d.dev() && d.mode() & 0o2000 == 0,
        _ => false,
    }
}

/// The (package, platform) pairs (`plans[package][platform]`) that share a build plan, split
/// so that no two members of a group share a binary name (`name_of(package, platform)`): each
/// group is one `go build -o DIR/`.
pub fn group_by_plan(
    plans: &[Vec<BuildPlan>],
    name_of: impl Fn(usize, usize) -> String,
) -> Vec<(&BuildPlan, Vec<(usize, usize)>)> {
    let mut groups: Vec<(&BuildPlan, Vec<(usize, usize)>)> = Vec::new();
    for (i, plans) in plans.iter().enumerate() {
        for (k, plan) in plans.iter().enumerate() {
            let name = name_of(i, k);
            let clash = |members: &Vec<(usize, usize)>| members.iter().any(|&(j, l)| name_of(j, l) == name);
            match groups.iter_mut().find(|(p, members)| *p == plan && !clash(members)) {
                Some((_, members)) => members.push((i, k)),
                None => groups.push((plan, vec![(i, k)])),
            }
        }
    }
    groups
}

/// The file name `go build -o DIR/` gives a command: the last element of its import path,
/// or the one before a major version suffix (`/v2`), plus `.exe` for Windows.
pub fn exec_name(import_path: &str, platform: &Platform) -> String {
    let mut parts = import_path.rsplit('/');
    let last = parts.next().unwrap_or(import_path);
    let is_version = |s: &str| {
        s.len() >= 2
            && s.starts_with('v')
            && !s.starts_with("v0")
            && s != "v1"
            && s[1..].bytes().all(|b| b.is_ascii_digit())
    };
    let name = match parts.next() {
        Some(previous) if is_version(last) => previous,
        _ => last,
    };
    if platform.os == "windows" { format!("{name}.exe") } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::KoConfig;
    use crate::gobuild::BuildFlags;
    use crate::settings::Environment;

    /// A temporary directory with two directories in it.
    fn two_dirs(a: &str, b: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join(a), root.path().join(b));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        (root, a, b)
    }

    #[test]
    fn a_binary_is_handed_over_once_a_new_file_has_its_name() {
        let (root, dir, slots) = two_dirs("out", "slots");
        std::fs::write(slots.join("old"), "old binary").unwrap();
        std::fs::hard_link(slots.join("old"), dir.join("old")).unwrap();
        let expected = |name: &str| Expected {
            name: name.into(),
            slot: slots.join(name),
            linked: std::fs::metadata(dir.join(name)).ok().map(|m| m.ino()),
            handed: None,
        };
        let mut expected = vec![expected("old"), expected("new")];
        let handed: Mutex<Vec<(usize, Built)>> = Default::default();
        let early = |i: usize, built: Built| handed.lock().unwrap().push((i, built));

        hand_over_linked(&dir, root.path(), &mut expected, &early).unwrap();
        assert!(handed.lock().unwrap().is_empty(), "the untouched link and a missing file are not binaries");

        std::fs::write(dir.join("new-go-tmp-umask"), "").unwrap();
        std::fs::write(root.path().join("linked"), "new binary").unwrap();
        std::fs::rename(root.path().join("linked"), dir.join("new")).unwrap();
        hand_over_linked(&dir, root.path(), &mut expected, &early).unwrap();
        hand_over_linked(&dir, root.path(), &mut expected, &early).unwrap();
        let handed = handed.into_inner().unwrap();
        assert_eq!(handed.len(), 1, "once");
        assert_eq!((handed[0].0, &handed[0].1.slot, handed[0].1.relinked), (1, &slots.join("new"), true));
        assert_eq!(std::fs::read_to_string(slots.join("new")).unwrap(), "new binary");
        assert!(!dir.join("new").exists(), "moved to its stable place");
        assert!(expected[1].handed.is_some() && expected[0].handed.is_none());

        // Another run relinking the same package replaces the stable place, not this run's binary.
        std::fs::write(root.path().join("theirs"), "their binary").unwrap();
        std::fs::rename(root.path().join("theirs"), slots.join("new")).unwrap();
        let ours = handed[0].1.path().to_path_buf();
        assert_eq!(std::fs::read_to_string(&ours).unwrap(), "new binary");
        drop(handed);
        drop(expected);
        assert!(!ours.exists(), "this run's link goes with the last of its holders");
    }

    #[test]
    fn only_a_rename_into_the_directory_hands_over_whole_binaries() {
        use std::os::unix::fs::PermissionsExt as _;
        let (root, work, dir) = two_dirs("work", "out");
        assert!(renames_into(&work, &dir));
        assert!(!renames_into(&root.path().join("missing"), &dir));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2755)).unwrap();
        assert!(!renames_into(&work, &dir), "Go copies into a set-group-ID directory");
    }

    /// A module with three commands, of which `c` does not compile.
    fn module(root: &Path) -> PathBuf {
        let module = root.join("app");
        let main = |name: &str, body: &str| {
            std::fs::create_dir_all(module.join("cmd").join(name)).unwrap();
            std::fs::write(module.join("cmd").join(name).join("main.go"), body).unwrap();
        };
        main("a", "package main\n\nfunc main() { println(\"a\") }\n");
        main("b", "package main\n\nfunc main() { println(\"b\") }\n");
        main("c", "package main\n\nfunc main() { println(1 + \"c\") }\n");
        std::fs::write(module.join("go.mod"), "module example.com/app\n\ngo 1.22\n").unwrap();
        module
    }

    #[tokio::test]
    async fn a_rename_into_the_watched_directory_is_told_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let changes = DirChanges::watch(dir.path());
        if cfg!(target_os = "linux") {
            assert_eq!(changes.look_every(), LOOK_ANYWAY, "inotify watches the directory");
        }
        let outside = tempfile::NamedTempFile::new_in(dir.path().parent().unwrap()).unwrap();
        outside.persist(dir.path().join("app")).unwrap();
        let told = tokio::time::timeout(std::time::Duration::from_secs(10), changes.next()).await;
        assert!(told.is_ok() || changes.look_every() == POLL_INTERVAL, "no notice of the rename");
    }

    #[tokio::test]
    async fn binaries_linked_before_a_failure_elsewhere_are_handed_over() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().join("cache")).unwrap();
        let module = module(root.path());
        let go = GoTool::new(Environment::process());
        let platform =
            Platform::linux(std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64").as_str());
        let packages: Vec<Package> = ["a", "c", "b"]
            .iter()
            .map(|name| Package {
                import_path: format!("example.com/app/cmd/{name}"),
                dir: module.join("cmd").join(name),
                build_dir: module.clone(),
                config: None,
            })
            .collect();
        let plan = go.plan(&packages[0], &platform, &KoConfig::default(), &BuildFlags::default()).await.unwrap();
        let items: Vec<(&Package, &Platform)> = packages.iter().map(|p| (p, &platform)).collect();
        let handed: Mutex<Vec<(usize, Built)>> = Default::default();
        let early = |i: usize, built: Built| handed.lock().unwrap().push((i, built));

        let built = go.build_many(&items, &plan, &cache, &early).await.unwrap();
        assert!(built.is_none(), "c does not compile");
        let mut handed = handed.into_inner().unwrap();
        handed.sort_by_key(|(i, _)| *i);
        assert_eq!(handed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2], "a and b, linked meanwhile");
        for (i, built) in handed {
            assert!(built.relinked);
            let out = std::process::Command::new(built.path()).output().unwrap();
            let name = ["a", "c", "b"][i];
            assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{name}\n"));
        }
    }
}
