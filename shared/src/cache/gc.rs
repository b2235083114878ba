//! Layers that nothing names any more. A relinked binary gets a new layer, and the layer its
//! slot's records named until then is left behind: ten apps rebuilt after a change to a
//! package they share leave some 50 MB per run, and a watch over them as much per cycle.
//! The run that replaces a slot's layer notes the old one in `superseded`; at the end of a
//! run (and between a watch's cycles) the noted layers that no layer record names are
//! removed, at most once every [`INTERVAL`].
//!
//! A layer another run still uses must stay, so removal waits until no other run uses the
//! cache. Every run holds a shared lock on `lock` while it lives; the removal takes it
//! exclusively, without waiting, and gives up when it cannot. Runs of versions before this
//! lock are seen by their locked directories in `tmp/`. A run that starts during a removal
//! waits for it (at most [`WAIT`], then goes on).
//!
//! Everything else stays: bases, configs, content-keyed layers. A layer removed while a
//! record still names it (another slot's identical binary, a revert past a removal) is a miss
//! that is made again, as every record's blob is checked before use.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::digest::Digest;

/// The least time between two removals in one cache.
pub(super) const INTERVAL: Duration = Duration::from_secs(600);
/// How long a starting run waits for a removal under way.
const WAIT: Duration = Duration::from_secs(5);
/// The noted layers, one digest per line.
const LIST: &str = "superseded";
/// Its time is that of the last removal.
const STAMP: &str = "superseded.swept";
const LOCK: &str = "lock";

/// The shared lock a run holds on the cache at `root` while it lives; `None` where the
/// filesystem has no locks (the run goes on, and no removal ever happens while it lives).
pub(super) fn hold_shared(root: &Path) -> Option<File> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(root.join(LOCK)).ok()?;
    let deadline = Instant::now() + WAIT;
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Some(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// Notes that the layer `digest` may be named by nothing once this run's records are written.
pub(super) fn note(root: &Path, digest: &Digest) {
    // One short line appended at once: lines of runs writing together do not mix.
    if let Ok(mut list) = OpenOptions::new().create(true).append(true).open(root.join(LIST)) {
        let _ = list.write_all(format!("{digest}\n").as_bytes());
    }
}

/// What a removal removed.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Swept {
    pub blobs: usize,
    pub bytes: u64,
}

/// Removes the noted layers that no record under `layers/` names, if the last removal was at
/// least [`INTERVAL`] ago and no other run uses the cache. `shared` is this run's own lock:
/// let go of for the exclusive one, and taken again afterwards when `again` (a run that goes
/// on). `own` are this run's directories in `tmp/`, locked by this run.
pub(super) fn sweep(root: &Path, shared: &mut Option<File>, own: &[PathBuf], again: bool) -> Option<Swept> {
    let list = root.join(LIST);
    if std::fs::metadata(&list).map_or(true, |m| m.len() == 0) || !due(&root.join(STAMP)) {
        return None;
    }
    *shared = None;
    let swept = exclusive(root).and_then(|_lock| {
        if other_run_lives(&root.join("tmp"), own) {
            return None;
        }
        Some(remove_unnamed(root, &list))
    });
    if again {
        *shared = hold_shared(root);
    }
    swept
}

fn due(stamp: &Path) -> bool {
    let last = std::fs::metadata(stamp).and_then(|m| m.modified());
    last.map_or(true, |t| SystemTime::now().duration_since(t).map_or(true, |age| age >= INTERVAL))
}

/// The exclusive lock, when no other run holds the shared one.
fn exclusive(root: &Path) -> Option<File> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(root.join(LOCK)).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// Whether a run directory in `tmp`, other than `own`, is locked: a live run of a version
/// that takes no shared lock.
fn other_run_lives(tmp: &Path, own: &[PathBuf]) -> bool {
    let Ok(entries) = std::fs::read_dir(tmp) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        entry.file_name().to_string_lossy().starts_with("run-")
            && !own.contains(&path)
            && File::open(&path).is_ok_and(|dir| dir.try_lock().is_err())
    })
}

fn remove_unnamed(root: &Path, list: &Path) -> Swept {
    let noted = std::fs::read_to_string(list).unwrap_or_default();
    let named = named_by_layer_records(&root.join("layers"));
    let mut swept = Swept::default();
    let mut seen = HashSet::new();
    for line in noted.lines() {
        let Ok(digest) = Digest::parse(line.trim()) else { continue };
        if named.contains(digest.as_str()) || !seen.insert(digest.clone()) {
            continue;
        }
        let path = root.join("blobs/sha256").join(digest.hex());
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if std::fs::remove_file(&path).is_ok() {
            swept.blobs += 1;
            swept.bytes += size;
        }
    }
    let _ = std::fs::remove_file(list);
    let _ = File::create(root.join(STAMP));
    swept
}

/// Every `sha256:…` digest in the records under `dir`.
fn named_by_layer_records(dir: &Path) -> HashSet<String> {
    let mut named = HashSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return named };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("sha256:") {
            let candidate = rest[at..].get(..7 + 64).unwrap_or_default();
            if candidate.len() == 71 && candidate[7..].bytes().all(|b| b.is_ascii_hexdigit()) {
                named.insert(candidate.to_string());
            }
            rest = &rest[at + 7..];
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            for sub in ["blobs/sha256", "layers", "tmp"] {
                fs_err::create_dir_all(root.join(sub)).unwrap();
            }
            Fixture { _dir: dir, root }
        }

        /// A blob of `len` bytes, returned with its (made-up) digest.
        fn blob(&self, fill: u8, len: usize) -> Digest {
            let digest = Digest::parse(&format!("sha256:{}", format!("{fill:02x}").repeat(32))).unwrap();
            std::fs::write(self.path(&digest), vec![fill; len]).unwrap();
            digest
        }

        fn path(&self, digest: &Digest) -> PathBuf {
            self.root.join("blobs/sha256").join(digest.hex())
        }

        fn sweep(&self) -> Option<Swept> {
            let mut shared = hold_shared(&self.root);
            sweep(&self.root, &mut shared, &[], false)
        }
    }

    #[test]
    fn noted_layers_no_record_names_go_and_the_rest_stay() {
        let f = Fixture::new();
        let old = f.blob(0xaa, 1000);
        let current = f.blob(0xbb, 2000);
        let unnoted = f.blob(0xcc, 3000);
        std::fs::write(f.root.join("layers/slot.json"), format!(r#"{{"layer":{{"digest":"{current}"}}}}"#)).unwrap();
        note(&f.root, &old);
        note(&f.root, &current);
        note(&f.root, &old);

        assert_eq!(f.sweep(), Some(Swept { blobs: 1, bytes: 1000 }));
        assert!(!f.path(&old).exists());
        assert!(f.path(&current).exists(), "a record names it");
        assert!(f.path(&unnoted).exists(), "never noted");
        assert!(!f.root.join(LIST).exists(), "the list starts again");

        // Not again before the interval is over.
        note(&f.root, &current);
        std::fs::remove_file(f.root.join("layers/slot.json")).unwrap();
        assert_eq!(f.sweep(), None);
        assert!(f.path(&current).exists());
        std::fs::remove_file(f.root.join(STAMP)).unwrap();
        assert_eq!(f.sweep(), Some(Swept { blobs: 1, bytes: 2000 }));
    }

    #[test]
    fn nothing_goes_while_another_run_uses_the_cache() {
        let f = Fixture::new();
        let old = f.blob(0xaa, 1000);
        note(&f.root, &old);

        // A run of this version: its shared lock.
        let other = hold_shared(&f.root).expect("locks work here");
        assert_eq!(f.sweep(), None);
        drop(other);

        // A run of an earlier version: its locked directory.
        fs_err::create_dir_all(f.root.join("tmp/run-7-live")).unwrap();
        let live = File::open(f.root.join("tmp/run-7-live")).unwrap();
        live.try_lock().unwrap();
        assert_eq!(f.sweep(), None);
        // This run's own directory does not count.
        let mut shared = hold_shared(&f.root);
        assert_eq!(
            sweep(&f.root, &mut shared, &[f.root.join("tmp/run-7-live")], true),
            Some(Swept { blobs: 1, bytes: 1000 })
        );
        assert!(shared.is_some(), "the run goes on with its shared lock");
        assert!(!f.path(&old).exists());
        drop(live);
    }
}
