//! The local tier of the Go build cache: the files Go reads through `DiskPath`. Outputs are
//! stored by their output ID (`o/<2 hex>/<64 hex>`, the sha256 of their bytes), action entries
//! by action ID (`a/<2 hex>/<hex>`, one line: the output ID in hex and the size). Every file is
//! written through a temporary file and a rename, so processes sharing the directory never see
//! half a file. Files are not synced: Go waits for every put, and Go's own cache does not sync
//! either; after a crash a file cut short has the wrong size or no parsable line, which
//! [`Disk::get`] takes for a miss. Reading an entry touches its output's mtime;
//! [`Disk::evict`] removes the outputs used least recently once the tier is over its size
//! bound. The tier's size is walked at most once a day unless its estimate (the file `size`:
//! the total of the last walk plus what builds added since) passes the bound: a walk costs a
//! `stat` per output, 0.4 s for 100,000 of them, and Go waits for it at the end of a build.

use std::collections::HashSet;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Outputs used this recently are never evicted: another process may have handed them to Go.
const EVICTION_GRACE: Duration = Duration::from_secs(10 * 60);
/// The size is walked at least this often, whatever the estimate says.
const WALK_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// What an action ID maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub output_id: Vec<u8>,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Disk {
    root: PathBuf,
    max_bytes: u64,
    /// Bytes of outputs this process wrote, not yet counted in the size estimate.
    added: Arc<AtomicU64>,
    /// Directories this process made or found, so that a write does not make them again.
    dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

fn fan_out(root: &Path, kind: &str, id: &[u8]) -> PathBuf {
    let hex = hex::encode(id);
    root.join(kind).join(&hex[..2.min(hex.len())]).join(hex)
}

fn with_path(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Disk {
    pub fn new(root: PathBuf, max_bytes: u64) -> Disk {
        Disk { root, max_bytes, added: Arc::default(), dirs: Arc::default() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn output_path(&self, output_id: &[u8]) -> PathBuf {
        fan_out(&self.root, "o", output_id)
    }

    fn action_path(&self, action_id: &[u8]) -> PathBuf {
        fan_out(&self.root, "a", action_id)
    }

    /// The entry of an action, when both it and its output are here (with the right size).
    pub fn get(&self, action_id: &[u8]) -> Option<Entry> {
        let text = std::fs::read_to_string(self.action_path(action_id)).ok()?;
        let (hex, size) = text.trim().split_once(' ')?;
        let entry = Entry { output_id: hex::decode(hex).ok()?, size: size.parse().ok()? };
        self.has_output(&entry).then_some(entry)
    }

    /// True when the output is here with its size; its mtime is touched (it was used).
    pub fn has_output(&self, entry: &Entry) -> bool {
        present(&self.output_path(&entry.output_id), entry.size)
    }

    /// Stores an output (unless it is here already) and the action's entry; returns the
    /// output's path.
    #[cfg(test)]
    pub fn put(&self, action_id: &[u8], output_id: &[u8], body: &[u8]) -> io::Result<PathBuf> {
        let path = self.store_output(output_id, body)?;
        self.record(action_id, &Entry { output_id: output_id.to_vec(), size: body.len() as u64 })?;
        Ok(path)
    }

    /// Stores an output unless it is here already; returns its path. Until [`Disk::record`]
    /// names it, no action finds it.
    pub fn store_output(&self, output_id: &[u8], body: &[u8]) -> io::Result<PathBuf> {
        let path = self.output_path(output_id);
        if !present(&path, body.len() as u64) {
            self.write_atomic(&path, body)?;
            self.added.fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        Ok(path)
    }

    /// Records that an action maps to an output already stored.
    pub fn record(&self, action_id: &[u8], entry: &Entry) -> io::Result<()> {
        let line = format!("{} {}\n", hex::encode(&entry.output_id), entry.size);
        self.write_atomic(&self.action_path(action_id), line.as_bytes())
    }

    /// A temporary file in the tier, to download into before [`Disk::adopt`].
    pub fn temp_file(&self) -> io::Result<tempfile::TempPath> {
        let dir = self.root.join("tmp");
        let file = self.in_dir(&dir, &dir, || tempfile::NamedTempFile::new_in(&dir))?;
        Ok(file.into_temp_path())
    }

    /// Moves a downloaded output, verified to be `entry`'s (its size included), into place.
    pub fn adopt(&self, temp: tempfile::TempPath, entry: &Entry) -> io::Result<PathBuf> {
        let path = self.output_path(&entry.output_id);
        let mut temp = Some(temp);
        self.in_dir(path.parent().expect("fanned-out paths have a parent"), &path, || {
            let file = temp.take().expect("a failed persist gives the file back");
            file.persist(&path).map_err(|e| {
                temp = Some(e.path);
                e.error
            })
        })?;
        self.added.fetch_add(entry.size, Ordering::Relaxed);
        Ok(path)
    }

    /// Not synced: see the module's doc.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let parent = path.parent().expect("fanned-out paths have a parent");
        self.in_dir(parent, path, || crate::cache::write_atomic_unsynced(path, bytes))
    }

    /// Makes `dir` (unless this process did before) and runs `make` in it, its error naming
    /// `made`; when the directory went since (removed by hand under a running build), makes
    /// it again and runs `make` once more.
    fn in_dir<T>(&self, dir: &Path, made: &Path, mut make: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.ensure_dir(dir)?;
        match make() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.dirs.lock().expect("the directory set is never poisoned").remove(dir);
                self.ensure_dir(dir)?;
                make()
            }
            done => done,
        }
        .map_err(with_path(made))
    }

    /// Makes a directory unless this process made or found it before.
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        if self.dirs.lock().expect("the directory set is never poisoned").contains(dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(with_path(dir))?;
        self.dirs.lock().expect("the directory set is never poisoned").insert(dir.to_path_buf());
        Ok(())
    }

    /// Removes the outputs used least recently until the tier is under 80% of its bound (when
    /// it is over it); returns how many bytes were freed. Entries whose output is gone are
    /// misses, so action files are left to be overwritten. Walks the outputs only when the
    /// size estimate passes the bound or the last walk is a day old (see the module's doc).
    pub fn evict(&self) -> u64 {
        let added = self.added.swap(0, Ordering::Relaxed);
        let path = self.root.join("size");
        // Builds sharing the tier take turns; without the file the walk goes on unrecorded.
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
        let Ok(mut file) = file.and_then(|f| f.lock().map(|()| f)) else { return self.walk().1 };
        let now = SystemTime::now();
        let mut text = String::new();
        let estimate = file.read_to_string(&mut text).ok().and_then(|_| SizeFile::parse(&text));
        let (size, walked, freed) = match estimate {
            Some(known)
                if now.duration_since(known.walked).is_ok_and(|age| age < WALK_INTERVAL)
                    && known.bytes.saturating_add(added) <= self.max_bytes =>
            {
                (known.bytes.saturating_add(added), known.walked, 0)
            }
            _ => {
                let (left, freed) = self.walk();
                (left, now, freed)
            }
        };
        let line = SizeFile { bytes: size, walked }.to_line();
        // A failed write costs a walk next time.
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(line.as_bytes()));
        freed
    }

    /// Evicts by a walk of every output: (bytes left, bytes freed).
    fn walk(&self) -> (u64, u64) {
        let mut outputs = list_outputs(&self.root.join("o"));
        let total: u64 = outputs.iter().map(|(_, _, size)| size).sum();
        if total <= self.max_bytes {
            return (total, 0);
        }
        outputs.sort_by_key(|(_, used, _)| *used);
        let target = self.max_bytes / 10 * 8;
        let recent = SystemTime::now() - EVICTION_GRACE;
        let (mut left, mut freed) = (total, 0);
        for (path, used, size) in outputs {
            if left <= target || used > recent {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                left -= size;
                freed += size;
            }
        }
        (left, freed)
    }
}

/// True when the file at `path` has `size` bytes; its mtime is touched (it was used).
fn present(path: &Path, size: u64) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == size => {
            touch(path);
            true
        }
        _ => false,
    }
}

/// The tier's size as of the last walk plus what was added since, and when that walk was:
/// one line, `<bytes> <unix seconds>`.
struct SizeFile {
    bytes: u64,
    walked: SystemTime,
}

impl SizeFile {
    fn parse(text: &str) -> Option<SizeFile> {
        let (bytes, walked) = text.trim().split_once(' ')?;
        let walked = SystemTime::UNIX_EPOCH + Duration::from_secs(walked.parse().ok()?);
        Some(SizeFile { bytes: bytes.parse().ok()?, walked })
    }

    fn to_line(&self) -> String {
        let secs = self.walked.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("{} {secs}\n", self.bytes)
    }
}

fn touch(path: &Path) {
    // Best effort: a read-only cache still answers.
    if let Ok(file) = std::fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Every output file with its mtime and size.
fn list_outputs(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut found = Vec::new();
    let Ok(fans) = std::fs::read_dir(dir) else { return found };
    for fan in fans.flatten() {
        let Ok(files) = std::fs::read_dir(fan.path()) else { continue };
        for file in files.flatten() {
            if let Ok(meta) = file.metadata()
                && meta.is_file()
            {
                found.push((file.path(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_put_is_got_back_with_its_output_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path().to_path_buf(), 1 << 30);
        assert_eq!(disk.get(&[1; 32]), None);
        let path = disk.put(&[1; 32], &[2; 32], b"archive").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"archive");
        assert!(path.starts_with(dir.path().join("o").join("02")), "{}", path.display());
        assert_eq!(disk.get(&[1; 32]), Some(Entry { output_id: vec![2; 32], size: 7 }));
        // An output that lost bytes (or vanished) makes its entries misses.
        std::fs::write(&path, b"arch").unwrap();
        assert_eq!(disk.get(&[1; 32]), None);
    }

    #[test]
    fn a_directory_removed_under_a_running_process_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path().to_path_buf(), 1 << 30);
        disk.put(&[1; 32], &[2; 32], b"archive").unwrap();
        std::fs::remove_dir_all(dir.path().join("o")).unwrap();
        std::fs::remove_dir_all(dir.path().join("a")).unwrap();
        let path = disk.put(&[1; 32], &[2; 32], b"archive").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"archive");
        assert_eq!(disk.get(&[1; 32]), Some(Entry { output_id: vec![2; 32], size: 7 }));
        // So is the directory of downloads, and an output's directory before a download moves in.
        let entry = Entry { output_id: vec![3; 32], size: 5 };
        let first = disk.temp_file().unwrap();
        std::fs::write(&first, b"first").unwrap();
        disk.adopt(first, &entry).unwrap();
        std::fs::remove_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::remove_dir_all(dir.path().join("o")).unwrap();
        let again = disk.temp_file().unwrap();
        std::fs::write(&again, b"again").unwrap();
        let path = disk.adopt(again, &entry).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"again");
    }

    #[test]
    fn eviction_removes_the_least_recently_used_outputs_past_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path().to_path_buf(), 100);
        let old = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..4u8 {
            let path = disk.put(&[i; 32], &[i + 10; 32], &[i; 40]).unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(old + Duration::from_secs(u64::from(i))).unwrap();
        }
        // 160 bytes over a bound of 100: the two oldest go, leaving 80.
        assert_eq!(disk.evict(), 80);
        assert_eq!(disk.get(&[0; 32]), None);
        assert_eq!(disk.get(&[1; 32]), None);
        assert!(disk.get(&[2; 32]).is_some() && disk.get(&[3; 32]).is_some());
        assert_eq!(disk.evict(), 0, "under the bound, nothing goes");
    }

    #[test]
    fn the_outputs_are_walked_only_when_the_estimate_passes_the_bound_or_a_day_went_by() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path().to_path_buf(), 100);
        // Used 4000, 3900, ... seconds ago: the oldest go first.
        let age = |path: &Path, secs: u64| {
            let used = SystemTime::now() - Duration::from_secs(secs);
            std::fs::File::options().write(true).open(path).unwrap().set_modified(used).unwrap();
        };
        age(&disk.put(&[1; 32], &[11; 32], &[1; 60]).unwrap(), 4000);
        assert_eq!(disk.evict(), 0, "60 bytes: under the bound");
        // Bytes another program wrote are not in the estimate (60): no walk sees them.
        let elsewhere = disk.output_path(&[12; 32]);
        std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
        std::fs::write(&elsewhere, [2; 60]).unwrap();
        age(&elsewhere, 3900);
        assert_eq!(disk.evict(), 0);
        // This process's 30 bytes take the estimate to 90, still under; 30 more pass it:
        // the walk finds 180 bytes and frees the oldest until at most 80 are left.
        age(&disk.put(&[3; 32], &[13; 32], &[3; 30]).unwrap(), 3800);
        assert_eq!(disk.evict(), 0);
        age(&disk.put(&[4; 32], &[14; 32], &[4; 30]).unwrap(), 3700);
        assert_eq!(disk.evict(), 120, "the two oldest, 60 bytes each");
        assert_eq!(disk.get(&[1; 32]), None);
        // A walk a day ago is walked again, whatever the estimate says.
        std::fs::write(&elsewhere, [2; 60]).unwrap();
        age(&elsewhere, 3900);
        std::fs::write(dir.path().join("size"), "0 1000\n").unwrap();
        assert_eq!(disk.evict(), 60);
    }

    #[test]
    fn recently_used_outputs_stay_even_over_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path().to_path_buf(), 10);
        disk.put(&[1; 32], &[2; 32], &[0; 40]).unwrap();
        assert_eq!(disk.evict(), 0);
        assert!(disk.get(&[1; 32]).is_some());
    }
}
