//! Where each binary lives between runs (its stable place in the cache, with a record of
//! what it was built from), and how a run holds the binaries it goes on with.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::{BuildPlan, Package};
use crate::cache::{Cache, CacheError};
use crate::platform::Platform;

/// Whether the file starts as the programs Go links do (ELF, Mach-O, PE, WebAssembly). Go
/// refuses to replace an output that does not ("already exists and is not an object file"),
/// so a cached binary damaged in place (zero-filled by a power loss) would fail every build.
pub(super) fn looks_like_a_program(path: &Path) -> bool {
    use std::io::Read as _;
    const MAGIC: [&[u8]; 7] = [
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"MZ",
        b"\0asm",
    ];
    let mut head = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    MAGIC.iter().any(|m| head[..read].starts_with(m))
}

/// This run's own links to the binaries up to date in their stable places, when the records
/// say nothing Go reads changed since they were built and each place still holds the file
/// recorded (checked on the link, so that another run's relink in between is seen).
pub(super) fn hold_recorded(
    cache: &Cache,
    slots: &[PathBuf],
    plan: &BuildPlan,
    snapshot: &str,
    held: &Path,
) -> Option<Vec<Built>> {
    slots
        .iter()
        .map(|slot| {
            let record = BuildRecord::read(cache, slot, plan).filter(|r| r.snapshot.as_deref() == Some(snapshot))?;
            let path = held_path(held);
            std::fs::hard_link(slot, &path).ok()?;
            let built = Built::held(slot.clone(), false, path);
            (BuildRecord::file_of(built.path()) == Some(record.file)).then_some(built)
        })
        .collect()
}

/// A fresh name for one of this run's links to a binary, in the run's temporary directory.
pub(super) fn held_path(held: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    held.join(format!("binary-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

/// What a binary in the cache was built from: the snapshot of its inputs before the build
/// (none when they could not be listed), and the file as Go left it (a changed file means
/// another build replaced it since, or something else wrote it).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct BuildRecord {
    snapshot: Option<String>,
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

    pub(super) fn file_of(slot: &Path) -> Option<(u64, u64, i64, i64)> {
        let meta = std::fs::metadata(slot).ok()?;
        Some((meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()))
    }

    pub(super) fn read(cache: &Cache, slot: &Path, plan: &BuildPlan) -> Option<BuildRecord> {
        cache.read_record("builds", &Self::key(slot, plan))
    }

    /// Best effort: a record that cannot be written is a later miss. The file is this run's
    /// own (its stable place may hold another run's by now, which the record then misses).
    pub(super) fn write(cache: &Cache, slot: &Path, ours: &Path, plan: &BuildPlan, snapshot: Option<&str>) {
        if let Some(file) = Self::file_of(ours) {
            let record = BuildRecord { snapshot: snapshot.map(str::to_string), file };
            let _ = cache.write_record("builds", &Self::key(slot, plan), &record);
        }
    }

    /// Whether the binary in `slot` is the file a build with `plan` left there, untouched
    /// since. Go takes an output whose header holds the right build ID as up to date
    /// whatever the rest of the file holds, so a binary swapped, truncated or written over
    /// in the cache would otherwise go into the image as it is.
    pub(super) fn vouches_for(cache: &Cache, slot: &Path, plan: &BuildPlan) -> bool {
        Self::read(cache, slot, plan).is_some_and(|r| Self::file_of(slot) == Some(r.file))
    }
}

/// A binary `go build` left in the cache, held for this run by a link of its own.
#[derive(Clone, Debug)]
pub struct Built {
    /// The binary's stable place in the cache, which records about it are keyed by. Another
    /// run may put a binary of its own there at any time: read [`Built::path`] instead.
    pub slot: PathBuf,
    /// False when Go found the binary up to date and left it as it was.
    pub relinked: bool,
    held: std::sync::Arc<Held>,
}

impl Built {
    /// The binary whose stable place is `slot`, held by this run's link `path`.
    pub(super) fn held(slot: PathBuf, relinked: bool, path: PathBuf) -> Built {
        Built { slot, relinked, held: std::sync::Arc::new(Held(path)) }
    }

    /// This run's link to the binary, there until the last clone of this is dropped.
    pub fn path(&self) -> &Path {
        &self.held.0
    }
}

/// A link removed when dropped, so that a long run (`--watch`) does not keep every binary
/// it built alive.
#[derive(Debug)]
struct Held(PathBuf);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where one package's binary for one platform, build directory and plan lives between runs.
/// Builds with other flags or Go settings get places of their own, so that they neither
/// relink over each other nor race for one file.
pub(super) fn binary_slot(
    cache: &Cache,
    package: &Package,
    platform: &Platform,
    plan: &BuildPlan,
) -> Result<PathBuf, CacheError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_that_starts_as_a_program_is_offered_to_go_for_relinking() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes).unwrap();
            looks_like_a_program(&dir.path().join(name))
        };
        assert!(file("elf", b"\x7fELF\x02\x01\x01"));
        assert!(file("exe", b"MZ\x90\0"));
        assert!(file("macho", b"\xcf\xfa\xed\xfe\x0c"));
        assert!(!file("zeros", &[0; 64]), "what a power loss leaves");
        assert!(!file("short", b"\x7f"));
        assert!(!looks_like_a_program(&dir.path().join("missing")));
    }

    #[test]
    fn an_up_to_date_binary_is_held_only_while_its_place_holds_the_recorded_file() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().join("cache")).unwrap();
        let held = cache.run_temp_dir().unwrap();
        let slot = cache.bin_dir("k").unwrap().join("out");
        std::fs::write(&slot, "our binary").unwrap();
        let plan = BuildPlan { dir: root.path().into(), args: vec![], env: vec![] };
        BuildRecord::write(&cache, &slot, &slot, &plan, Some("inputs"));

        let built = hold_recorded(&cache, std::slice::from_ref(&slot), &plan, "inputs", &held).unwrap();
        assert_eq!(std::fs::read_to_string(built[0].path()).unwrap(), "our binary");
        assert!(hold_recorded(&cache, std::slice::from_ref(&slot), &plan, "changed", &held).is_none());

        // Another run's relink in between: its binary is not the one recorded.
        std::fs::write(root.path().join("theirs"), "their binary").unwrap();
        std::fs::rename(root.path().join("theirs"), &slot).unwrap();
        assert!(hold_recorded(&cache, std::slice::from_ref(&slot), &plan, "inputs", &held).is_none());
        assert_eq!(std::fs::read_to_string(built[0].path()).unwrap(), "our binary", "still held");
    }
}
