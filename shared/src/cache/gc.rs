//! Layers that nothing names any more. A relinked binary gets a new layer, and the layer its
//! slot's records named until then is left behind: ten apps rebuilt after a change to a
//! package they share leave some 50 MB per run, and a watch over them as much per cycle.
//! The run that replaces a slot's layer notes the old one, with the time, in `superseded`; at
//! the end of a run (and between a watch's cycles) the layers noted at least [`INTERVAL`] ago
//! that no layer record names are removed, at most once every [`INTERVAL`]. A package's
//! kodata layer has such a slot too (see `assemble::kodata`): a change under `kodata/` leaves
//! the old layer named by nothing in the same way.
//!
//! A layer another run still uses must stay. The age alone keeps it for any run shorter than
//! [`INTERVAL`], whatever that run is (one of a version that knows nothing of this); on top of
//! it, removal waits until no other run uses the cache. Every run holds a shared lock on
//! `lock` while it lives; the removal takes it exclusively, without waiting, and gives up when
//! it cannot. Runs of versions before this lock are seen by their locked directories in
//! `tmp/` (one that cannot be opened counts as live). A run that starts during a removal
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

/// The least time between two removals in one cache, and the least age of a note a removal
/// acts on.
pub(super) const INTERVAL: Duration = Duration::from_secs(600);
/// How long a starting run waits for a removal under way.
const WAIT: Duration = Duration::from_secs(5);
/// The noted layers, one per line: the time noted (seconds since 1970), a space, the digest.
const LIST: &str = "superseded";
/// Its time is that of the last removal.
const STAMP: &str = "superseded.swept";
const LOCK: &str = "lock";

/// The shared lock a run holds on the cache at `root` while it lives; `None` where the
/// filesystem has no locks (the run goes on, and no removal ever happens while it lives).
pub(super) fn hold_shared(root: &Path) -> Option<File> {
    let file = open_lock(root)?;
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
        let _ = list.write_all(format!("{} {digest}\n", now_secs()).as_bytes());
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
        // A live run of a version that takes no shared lock holds its run directory.
        if super::other_run_lives(&root.join("tmp"), own) {
            return None;
        }
        remove_unnamed(root, &list)
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
    let file = open_lock(root)?;
    file.try_lock().ok()?;
    Some(file)
}

/// The lock file, made if need be; read-only when it is another user's.
fn open_lock(root: &Path) -> Option<File> {
    let path = root.join(LOCK);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .or_else(|_| File::open(&path))
        .ok()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Removes the layers noted at least [`INTERVAL`] ago that no record names, and keeps the
/// younger notes for a later removal. Nothing is removed when a record cannot be read.
fn remove_unnamed(root: &Path, list: &Path) -> Option<Swept> {
    let noted = std::fs::read_to_string(list).ok()?;
    let named = named_by_layer_records(&root.join("layers"))?;
    let old_enough = now_secs().saturating_sub(INTERVAL.as_secs());
    let mut swept = Swept::default();
    let mut seen = HashSet::new();
    let mut young = String::new();
    for line in noted.lines() {
        let Some((Ok(at), Ok(digest))) = line.split_once(' ').map(|(t, d)| (t.parse::<u64>(), Digest::parse(d))) else {
            continue;
        };
        if at > old_enough {
            young.push_str(line);
            young.push('\n');
            continue;
        }
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
    // Rewritten under the exclusive lock: no run of this version appends meanwhile.
    let _ = if young.is_empty() {
        std::fs::remove_file(list)
    } else {
        super::write_atomic_unsynced(list, young.as_bytes())
    };
    let _ = File::create(root.join(STAMP));
    Some(swept)
}

/// Every `sha256:…` digest in the records under `dir`; `None` when one cannot be read.
fn named_by_layer_records(dir: &Path) -> Option<HashSet<String>> {
    let mut named = HashSet::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("sha256:") {
            let candidate = rest[at..].get(..7 + 64).unwrap_or_default();
            if candidate.len() == 71 && candidate[7..].bytes().all(|b| b.is_ascii_hexdigit()) {
                named.insert(candidate.to_string());
            }
            rest = &rest[at + 7..];
        }
    }
    Some(named)
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

        /// A note made `ago` before now, as [`note`] writes it.
        fn note_made(&self, digest: &Digest, ago: Duration) {
            let mut list = OpenOptions::new().create(true).append(true).open(self.root.join(LIST)).unwrap();
            writeln!(list, "{} {digest}", now_secs() - ago.as_secs()).unwrap();
        }

        fn sweep(&self) -> Option<Swept> {
            let mut shared = hold_shared(&self.root);
            sweep(&self.root, &mut shared, &[], false)
        }
    }

    const AN_HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn old_notes_of_layers_no_record_names_go_and_the_rest_stay() {
        let f = Fixture::new();
        let old = f.blob(0xaa, 1000);
        let current = f.blob(0xbb, 2000);
        let unnoted = f.blob(0xcc, 3000);
        let young = f.blob(0xdd, 4000);
        std::fs::write(f.root.join("layers/slot.json"), format!(r#"{{"layer":{{"digest":"{current}"}}}}"#)).unwrap();
        f.note_made(&old, AN_HOUR);
        f.note_made(&current, AN_HOUR);
        f.note_made(&old, AN_HOUR);
        note(&f.root, &young);

        assert_eq!(f.sweep(), Some(Swept { blobs: 1, bytes: 1000 }));
        assert!(!f.path(&old).exists());
        assert!(f.path(&current).exists(), "a record names it");
        assert!(f.path(&unnoted).exists(), "never noted");
        assert!(f.path(&young).exists(), "noted too recently: a run may still use it");
        let left = std::fs::read_to_string(f.root.join(LIST)).unwrap();
        assert!(left.trim().ends_with(&format!(" {young}")) && left.lines().count() == 1, "{left}");

        // Not again before the interval is over.
        std::fs::write(f.root.join(LIST), "").unwrap();
        f.note_made(&young, AN_HOUR);
        assert_eq!(f.sweep(), None);
        assert!(f.path(&young).exists());
        std::fs::remove_file(f.root.join(STAMP)).unwrap();
        assert_eq!(f.sweep(), Some(Swept { blobs: 1, bytes: 4000 }));
        assert!(!f.root.join(LIST).exists(), "nothing left to note");

        // A record that cannot be read might name anything: nothing goes.
        f.note_made(&current, AN_HOUR);
        std::fs::create_dir(f.root.join("layers/unreadable.json")).unwrap();
        std::fs::remove_file(f.root.join("layers/slot.json")).unwrap();
        std::fs::remove_file(f.root.join(STAMP)).unwrap();
        assert_eq!(f.sweep(), None);
        assert!(f.path(&current).exists());
    }

    #[test]
    fn nothing_goes_while_another_run_uses_the_cache() {
        let f = Fixture::new();
        let old = f.blob(0xaa, 1000);
        f.note_made(&old, AN_HOUR);

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
        let own = [f.root.join("tmp/run-7-live")];
        assert_eq!(sweep(&f.root, &mut shared, &own, true), Some(Swept { blobs: 1, bytes: 1000 }));
        assert!(shared.is_some(), "the run goes on with its shared lock");
        assert!(!f.path(&old).exists());
        drop(live);
    }
}
