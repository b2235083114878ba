//! Running `go build`: one or several packages into their stable places in the cache, or
//! not at all when nothing Go reads changed (see `fingerprint`).

use std::path::{Path, PathBuf};

use sha2::Digest as _;

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
        match self.build_into(&[(package, platform)], plan, cache).await? {
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
    pub async fn build_many(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<Option<Vec<Built>>, GoBuildError> {
        Ok(self.build_into(items, plan, cache).await?.ok())
    }

    /// Brings the packages' binaries up to date: without running Go when a snapshot of the
    /// build's inputs equals the one recorded with the binaries (see `fingerprint`), else with
    /// [`GoTool::run_go_build`]. `Err` holds Go's output.
    async fn build_into(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<Result<Vec<Built>, (String, String)>, GoBuildError> {
        // Nothing Go reads changed since it made these binaries: they are up to date.
        let snapshot = {
            let _span = crate::timing::span(|| "build snapshot".to_string());
            let (go, walked) = (self.go.clone(), plan.clone());
            blocking(move || fingerprint::snapshot(&go, &walked)).await.flatten()
        };
        let slots: Vec<PathBuf> =
            items.iter().map(|(p, platform)| binary_slot(cache, p, platform, plan)).collect::<Result<_, _>>()?;
        if let Some(snapshot) = &snapshot
            && slots.iter().all(|slot| BuildRecord::read(cache, slot, plan).is_some_and(|r| r.matches(snapshot, slot)))
        {
            for (package, platform) in items {
                crate::output::detail(format!(
                    "{} for {platform} is up to date: nothing go build reads changed, so Go was not run",
                    package.import_path
                ));
            }
            return Ok(Ok(slots.into_iter().map(|path| Built { path, relinked: false }).collect()));
        }
        let built = self.run_go_build(items, plan, cache).await?;
        if let (Some(snapshot), Ok(built)) = (&snapshot, &built) {
            for b in built {
                BuildRecord::write(cache, &b.path, plan, snapshot);
            }
        }
        Ok(built)
    }

    /// Runs `go build -o DIR/ pkg…` into a fresh directory of the cache where each package's
    /// stable binary is hard-linked under the name Go gives it. Go leaves an up-to-date
    /// binary alone and, when it relinks, replaces the entry with a new file (it renames over
    /// it, or removes it and writes a new one), so a new inode tells a relinked binary apart,
    /// and the stable copy is never written in place; a new file then moves to the stable place.
    async fn run_go_build(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<Result<Vec<Built>, (String, String)>, GoBuildError> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = cache.temp_dir()?;
        let io = |path: &Path, source| CacheError { path: path.to_path_buf(), source };
        // (name Go writes, stable place, inode of the link made to it before the build)
        let mut expected: Vec<(String, PathBuf, Option<u64>)> = Vec::with_capacity(items.len());
        for (package, platform) in items {
            let slot = binary_slot(cache, package, platform, plan)?;
            let name = exec_name(&package.import_path, platform);
            let link = dir.path().join(&name);
            // Without the link (another filesystem), Go just relinks.
            let linked = std::fs::hard_link(&slot, &link).ok().and_then(|()| std::fs::metadata(&link).ok());
            expected.push((name, slot, linked.map(|m| m.ino())));
        }
        let mut cmd = self.command(&plan.dir);
        cmd.env_clear().envs(plan.env.iter().map(|(k, v)| (k, v)));
        let mut out_dir = dir.path().as_os_str().to_owned();
        out_dir.push("/");
        cmd.args(&plan.args).arg("-o").arg(out_dir);
        cmd.args(items.iter().map(|(p, _)| p.import_path.as_str()));
        // Go's own work directory goes with this run's temporary files (removed when the run
        // is stopped, or by the next run after a kill), unless the user chose a place.
        if !plan.env.iter().any(|(k, _)| k == "GOTMPDIR") {
            cmd.env("GOTMPDIR", cache.run_temp_dir()?);
        }
        let output = self.output(&mut cmd).await?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
            return Ok(Err((output.status.to_string(), text)));
        }
        // Every entry, and whether Go wrote it (not one of our untouched links).
        let entries: Vec<(String, bool)> = std::fs::read_dir(dir.path())
            .map_err(|e| io(dir.path(), e))?
            .filter_map(|e| e.ok())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ino = std::fs::symlink_metadata(e.path()).ok().filter(|m| m.is_file()).map(|m| m.ino());
                let ours = expected.iter().any(|(n, _, linked)| *n == name && linked.is_some() && *linked == ino);
                (name, ino.is_some() && !ours)
            })
            .collect();
        let written: Vec<&String> = entries.iter().filter(|(_, new)| *new).map(|(n, _)| n).collect();
        // For one package, the one file Go wrote is its binary whatever its name.
        if let ([(name, _, _)], [file]) = (expected.as_mut_slice(), written.as_slice()) {
            name.clone_from(file);
        }
        // Anything Go wrote under another name means the names were guessed wrong.
        let found = |name: &String| entries.iter().any(|(n, _)| n == name);
        if written.iter().any(|f| !expected.iter().any(|(name, _, _)| name == *f))
            || expected.iter().any(|(name, _, _)| !found(name))
        {
            let names: Vec<&String> = entries.iter().map(|(n, _)| n).collect();
            let wanted: Vec<&String> = expected.iter().map(|e| &e.0).collect();
            return Ok(Err(("unexpected output".into(), format!("go build wrote {names:?}, not {wanted:?}"))));
        }
        let mut built = Vec::with_capacity(expected.len());
        for (name, slot, _) in expected {
            let relinked = written.contains(&&name);
            if relinked {
                let path = dir.path().join(&name);
                std::fs::rename(&path, &slot).map_err(|e| io(&slot, e))?;
            }
            built.push(Built { path: slot, relinked });
        }
        Ok(Ok(built))
    }
}

/// What a binary in the cache was built from: the snapshot of its inputs before the build,
/// and the file as Go left it (a changed file means another build replaced it since).
#[derive(serde::Serialize, serde::Deserialize)]
struct BuildRecord {
    snapshot: String,
    file: (u64, u64, i64, i64),
}

impl BuildRecord {
    fn key(slot: &Path, plan: &BuildPlan) -> String {
        let mut key = sha2::Sha256::new();
        // The environment is in the snapshot, filtered to what Go reads.
        key.update(slot.as_os_str().as_encoded_bytes());
        key.update(format!("{:?} {:?}", plan.dir, plan.args).as_bytes());
        hex::encode(key.finalize())
    }

    fn file_of(slot: &Path) -> Option<(u64, u64, i64, i64)> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(slot).ok()?;
        Some((meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()))
    }

    fn read(cache: &Cache, slot: &Path, plan: &BuildPlan) -> Option<BuildRecord> {
        cache.read_record("builds", &Self::key(slot, plan))
    }

    fn matches(&self, snapshot: &str, slot: &Path) -> bool {
        self.snapshot == snapshot && Self::file_of(slot) == Some(self.file)
    }

    /// Best effort: a record that cannot be written is a later miss.
    fn write(cache: &Cache, slot: &Path, plan: &BuildPlan, snapshot: &str) {
        if let Some(file) = Self::file_of(slot) {
            let record = BuildRecord { snapshot: snapshot.to_string(), file };
            let _ = cache.write_record("builds", &Self::key(slot, plan), &record);
        }
    }
}

/// A binary `go build` left in the cache.
#[derive(Clone, Debug)]
pub struct Built {
    pub path: PathBuf,
    /// False when Go found the binary up to date and left it as it was.
    pub relinked: bool,
}

/// Where one package's binary for one platform, build directory and plan lives between runs.
/// Builds with other flags or Go settings get places of their own, so that they neither
/// relink over each other nor race for one file.
fn binary_slot(cache: &Cache, package: &Package, platform: &Platform, plan: &BuildPlan) -> Result<PathBuf, CacheError> {
    let mut key = sha2::Sha256::new();
    for part in [package.import_path.as_str(), &platform.to_string(), &plan.dir.to_string_lossy()] {
        key.update(part.as_bytes());
        key.update([0]);
    }
    for arg in &plan.args {
        key.update(arg.as_bytes());
        key.update([0]);
    }
    let mut vars: Vec<&(String, String)> =
        plan.env.iter().filter(|(k, _)| k.starts_with("GO") || k.starts_with("CGO_")).collect();
    vars.sort();
    for (k, v) in vars {
        key.update(format!("{k}={v}").as_bytes());
        key.update([0]);
    }
    let key = hex::encode(&key.finalize()[..12]);
    Ok(cache.bin_dir(&key)?.join("out"))
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
