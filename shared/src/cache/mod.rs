//! The on-disk cache: content-addressed blobs, Go build outputs at stable paths, layer records
//! keyed by the binary's content, and the local image store. Writes go to a temporary file
//! and are renamed into place, so processes sharing the cache never see half-written entries.
//!
//! Nothing in it is synced to disk: everything is a hint, checked where it is used, so what a
//! power loss cuts short is a miss and is made again. A record that does not parse is a miss;
//! a blob is used only at the size that named it ([`Cache::has_blob`]), and the
//! blocks an earlier layer lends carry their own checks. Syncing each record cost a run of
//! ten images 20 `fsync`s, up to 0.2 s each on a disk busy with Go's output.
//!
//! Temporary files live in a directory of each run's own, `tmp/run-<pid>-<random>/`, which
//! the run holds an advisory lock on (flock) as long as it lives. The run removes it on the
//! way out, also when stopped by a signal (see [`remove_run_dirs`]); one left by a killed
//! run (SIGKILL, a crash) has no lock any more, and the next run to open the cache removes
//! it. A concurrent run's directory is locked, so it is left alone.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::digest::Digest;
use crate::settings::Environment;

mod gc;

#[derive(Debug, thiserror::Error)]
#[error("cache {path}: {source}{}", advice(source))]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The way out of a cache error of this kind, where there is one beyond the error itself.
pub(crate) fn advice(source: &io::Error) -> &'static str {
    match source.kind() {
        // A directory where a file belongs, or the other way round: not something a run of
        // ours leaves (entries are renamed into place whole).
        io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => {
            "; something else changed this cache entry: remove it (or all of KOCACHE, which holds nothing that cannot be made again) and run again"
        }
        io::ErrorKind::StorageFull => {
            "; free space on the filesystem of the cache (KOCACHE) or point KOCACHE at another"
        }
        _ => "",
    }
}

/// Whether `source` says this user may not write there.
fn is_unwritable(source: &io::Error) -> bool {
    matches!(source.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
}

/// The way out of a cache in a place this user cannot use.
const KOCACHE_HINT: &str = "point KOCACHE at a directory this user can write";

/// `source` with the way out of a cache this user cannot write, when that is what it says.
fn with_kocache_hint(source: io::Error) -> io::Error {
    if !is_unwritable(&source) {
        return source;
    }
    io::Error::new(source.kind(), format!("{source}; {KOCACHE_HINT}"))
}

#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
    /// Set when the default cache could not be written and this run's cache is a temporary
    /// directory removed when the run ends: why the default could not be used.
    instead_of: Option<Arc<CacheError>>,
}

impl Cache {
    /// Opens the user's cache, at [`root_in`] `env`; an error says how to choose another.
    ///
    /// Where the default place cannot be written (a container whose user has no writable
    /// home, as `runAsUser` pods and `docker run --user` often have) and `KOCACHE` is unset,
    /// the run builds with a cache in a temporary directory, removed when it ends, and says
    /// so: ko keeps no cache by default, so such a build works with ko.
    pub fn open(env: &Environment) -> Result<Cache, CacheError> {
        let root = root_in(env);
        let source = match Cache::at(root.clone()) {
            Ok(cache) => return Ok(cache),
            Err(e) => e.source,
        };
        if !is_unwritable(&source) {
            // The root itself no directory and none to be made (a file, or under one): the
            // way out is another place, not removing an entry, so the error is of kind
            // `Other`, which adds no advice about damaged entries.
            let source = if root.is_dir() { source } else { io::Error::other(format!("{source}; {KOCACHE_HINT}")) };
            return Err(CacheError { path: root, source });
        }
        let error = CacheError { path: root.clone(), source: with_kocache_hint(source) };
        if env.path("KOCACHE").is_some() {
            return Err(error);
        }
        let Ok(temp) = tempfile::Builder::new().prefix("kubectl-ko-cache-").tempdir_in(temp_dir(env)) else {
            return Err(error);
        };
        let path = temp.keep();
        run_dirs().throwaway.insert(path.clone());
        let mut cache = Cache::at(path)?;
        crate::output::warn(format!(
            "cannot keep a cache in {} ({}); this run caches in a temporary directory removed when it ends: set KOCACHE to a directory this user can write to keep one between runs",
            root.display(),
            io::Error::from(error.source.kind()),
        ));
        cache.instead_of = Some(Arc::new(error));
        Ok(cache)
    }

    /// Opens the cache at `root`, making its directories, and removes what killed runs left
    /// in its `tmp/`.
    pub fn at(root: PathBuf) -> Result<Cache, CacheError> {
        let cache = Cache { root, instead_of: None };
        for sub in ["blobs/sha256", "bin", "layers", "tmp"] {
            cache.ensure_dir(&cache.root.join(sub))?;
        }
        let tmp = cache.root.join("tmp");
        if run_dirs().swept.insert(tmp.clone()) {
            sweep(&tmp);
        }
        // Taken outside the lock of this process's run directories: it may wait for another
        // run's removal, and a signal's way out needs that lock.
        if !run_dirs().shared.contains_key(&cache.root) {
            let lock = gc::hold_shared(&cache.root);
            run_dirs().shared.entry(cache.root.clone()).or_insert(lock);
        }
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure_dir(&self, path: &Path) -> Result<(), CacheError> {
        fs_err::create_dir_all(path).map_err(|source| CacheError { path: path.to_path_buf(), source })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// True when the blob is there at `size` bytes (what names it says): a blob a power loss
    /// cut short is a miss.
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// A directory for one build output; Go relinks into it only when something changed.
    pub fn bin_dir(&self, key: &str) -> Result<PathBuf, CacheError> {
        let dir = self.root.join("bin").join(key);
        self.ensure_dir(&dir)?;
        Ok(dir)
    }

    /// This run's own temporary directory (`tmp/run-…`), made and locked on first use. For
    /// other programs' temporary files too (`GOTMPDIR`), so that they go with the run's.
    pub fn run_temp_dir(&self) -> Result<PathBuf, CacheError> {
        let tmp = self.root.join("tmp");
        let mut dirs = run_dirs();
        if dirs.closed {
            let source = io::Error::new(io::ErrorKind::Interrupted, "the run is ending");
            return Err(CacheError { path: tmp, source });
        }
        if let Some(dir) = dirs.live.get(&tmp) {
            return Ok(dir.path.clone());
        }
        let dir = RunDir::create(&tmp).map_err(|e| CacheError { path: tmp.clone(), source: with_kocache_hint(e) })?;
        let path = dir.path.clone();
        dirs.live.insert(tmp, dir);
        Ok(path)
    }

    /// A fresh temporary file inside the cache, on the same filesystem as its final place.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.run_temp_dir()?;
        // 0644 less the umask: blobs are hard-linked into OCI layouts other tools read.
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(|source| CacheError { path: dir, source })
    }

    /// A fresh temporary directory inside the cache, on the same filesystem as `bin/`.
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, CacheError> {
        self.temp_dir_named(".tmp")
    }

    /// [`Cache::temp_dir`] with a name that says what it is for (`delve-`, `docker-save-`).
    pub fn temp_dir_named(&self, prefix: &str) -> Result<tempfile::TempDir, CacheError> {
        let dir = self.run_temp_dir()?;
        tempfile::Builder::new().prefix(prefix).tempdir_in(&dir).map_err(|source| CacheError { path: dir, source })
    }

    /// Moves a finished temporary file, whose content the caller hashed, to the blob's place
    /// (a no-op if another process won).
    pub fn commit_blob(&self, temp: tempfile::NamedTempFile, digest: &Digest) -> Result<PathBuf, CacheError> {
        let path = self.blob_path(digest);
        temp.persist(&path).map_err(|e| CacheError { path: path.clone(), source: e.error })?;
        whole_blobs().insert(path.clone());
        Ok(path)
    }

    /// Puts a small blob (a config, a manifest) into the cache, unless it is there with this
    /// very content: one damaged on disk at the same size is replaced.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !(self.has_blob(&digest, bytes.len() as u64) && std::fs::read(&path).is_ok_and(|b| b == bytes)) {
            self.write_atomic(&path, bytes)?;
        }
        whole_blobs().insert(path);
        Ok(digest)
    }

    /// The bytes of a small blob (a config) when the cache holds them whole. One whose content
    /// no longer matches its digest (damaged on disk) is removed, and is a miss.
    pub fn read_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).ok()?;
        if &Digest::of(&bytes) != digest {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(bytes)
    }

    /// Checks a blob about to be copied out of the cache (uploaded, put into a layout or a
    /// tarball) against its digest: a file damaged on disk but not in size would be published
    /// as the blob, or refused by the registry on every push. Each blob is hashed once per
    /// run; those this run wrote are known whole. A damaged blob is removed, so that it is
    /// made or fetched again.
    pub fn check_blob(&self, digest: &Digest, size: u64) -> Result<BlobState, CacheError> {
        let path = self.blob_path(digest);
        if !self.has_blob(digest, size) {
            return Ok(BlobState::Missing);
        }
        if whole_blobs().contains(&path) {
            return Ok(BlobState::Whole(path));
        }
        let (actual, _) =
            crate::digest::digest_file(&path).map_err(|source| CacheError { path: path.clone(), source })?;
        if &actual != digest {
            let _ = std::fs::remove_file(&path);
            return Ok(BlobState::Damaged(path));
        }
        whole_blobs().insert(path.clone());
        Ok(BlobState::Whole(path))
    }

    /// Writes through a temporary file in this run's directory and renames it over `path`
    /// (which is inside the cache, so on the same filesystem). Not synced: see the module's
    /// documentation.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        use std::io::Write;
        let err = |source| CacheError { path: path.to_path_buf(), source };
        let mut temp = self.temp_file()?;
        temp.write_all(bytes).map_err(err)?;
        match temp.persist(path) {
            Ok(_) => Ok(()),
            // A part of the cache on another filesystem (a symlinked directory).
            Err(e) if e.error.kind() == io::ErrorKind::CrossesDevices => {
                write_atomic_unsynced(path, bytes).map_err(err)
            }
            Err(e) => Err(err(e.error)),
        }
    }

    /// A small JSON record under `layers/`; a missing or unreadable record is a cache miss.
    pub fn read_record<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.root.join(kind).join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write_record<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<(), CacheError> {
        let dir = self.root.join(kind);
        self.ensure_dir(&dir)?;
        let bytes = serde_json::to_vec(value).expect("cache records serialize");
        self.write_atomic(&dir.join(format!("{key}.json")), &bytes)
    }

    /// Notes that the layer `digest`, which a slot's records named until now, is replaced by
    /// a new one: see [`sweep_superseded`].
    pub fn supersede(&self, digest: &Digest) {
        gc::note(&self.root, digest);
    }

    /// The OCI layout that holds images built without `KO_DOCKER_REPO`: it must outlive the
    /// run, so a run whose cache is a temporary directory has none.
    pub fn image_store(&self) -> Result<PathBuf, CacheError> {
        match &self.instead_of {
            None => Ok(self.root.join("images")),
            Some(unusable) => Err(CacheError {
                path: unusable.path.clone(),
                source: io::Error::new(
                    unusable.source.kind(),
                    format!(
                        "{}; with KO_DOCKER_REPO unset the image is kept there, so set one of them",
                        unusable.source
                    ),
                ),
            }),
        }
    }
}

/// Writes through a temporary sibling, synced, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// [`write_atomic`] without the sync, for a cache whose reader takes a file cut short by a
/// crash for a miss (the Go build cache's local tier checks sizes).
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (mut temp, _guard) = temp_file_outside(dir, &name, ".tmp")?;
    temp.write_all(bytes)?;
    if sync {
        temp.as_file().sync_all()?;
    }
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Where the cache is: `$KOCACHE`, else `$XDG_CACHE_HOME/kubectl-ko`, else
/// `~/.cache/kubectl-ko`, else (no home) `kubectl-ko` in the temporary directory. Always
/// absolute, a relative setting taken from this process's directory: Go is given paths in the
/// cache (`GOTMPDIR`, `-o`) and runs in a build's `dir`, not necessarily here.
pub fn root_in(env: &Environment) -> PathBuf {
    let root = match env.path("KOCACHE") {
        Some(dir) => dir,
        None => user_cache_dir(env).join("kubectl-ko"),
    };
    std::path::absolute(&root).unwrap_or(root)
}

/// `$XDG_CACHE_HOME`, else `~/.cache`, else the temporary directory.
pub fn user_cache_dir(env: &Environment) -> PathBuf {
    if let Some(dir) = env.path("XDG_CACHE_HOME") {
        return dir;
    }
    match env.home() {
        Some(home) => home.join(".cache"),
        None => temp_dir(env),
    }
}

/// `std::env::temp_dir` for this environment: `$TMPDIR` (as set, empty included), else the
/// platform's default.
fn temp_dir(env: &Environment) -> PathBuf {
    match env.get("TMPDIR") {
        Some(dir) => PathBuf::from(dir),
        // macOS asks the system for a per-user directory; std knows how.
        None if cfg!(target_vendor = "apple") => std::env::temp_dir(),
        None => PathBuf::from("/tmp"),
    }
}

/// How old an entry of `tmp/` that is not a run's directory must be before a run removes it:
/// such entries come from versions that put temporary files straight into `tmp/`, or from a
/// run killed while making its directory, and a live one is never this old.
const LOOSE_ENTRY_AGE: Duration = Duration::from_secs(3600);

/// A run's own temporary directory, locked while the run lives.
struct RunDir {
    path: PathBuf,
    /// Holds the lock; closing it (at exit, or when the process dies) releases it.
    _lock: File,
}

impl RunDir {
    /// Makes `tmp/run-<pid>-<random>/`, locked before it gets its name, so that no other run
    /// ever sees it unlocked.
    fn create(tmp: &Path) -> io::Result<RunDir> {
        let staging = tempfile::Builder::new().prefix(".new-").tempdir_in(tmp)?;
        let lock = File::open(staging.path())?;
        // A fresh directory: only a filesystem without flock refuses. The run goes on; its
        // directory is then never taken for a dead run's (a sweep removes only what it
        // could lock), it is just not swept after a kill either.
        let _ = lock.try_lock();
        let suffix =
            staging.path().file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_start_matches(".new-");
        let path = tmp.join(format!("run-{}-{suffix}", std::process::id()));
        std::fs::rename(staging.path(), &path)?;
        // Renamed away: nothing for the TempDir to remove.
        let _ = staging.keep();
        Ok(RunDir { path, _lock: lock })
    }
}

/// What [`Cache::check_blob`] found.
#[derive(Debug, PartialEq)]
pub enum BlobState {
    Whole(PathBuf),
    Missing,
    /// Its content did not match its digest; it was removed.
    Damaged(PathBuf),
}

/// The blobs this run wrote or checked against their digests.
fn whole_blobs() -> MutexGuard<'static, HashSet<PathBuf>> {
    static WHOLE: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);
    WHOLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct RunDirs {
    /// This process's run directories, by the `tmp/` they are in.
    live: HashMap<PathBuf, RunDir>,
    /// Temporary files outside the cache (see [`Temporary`]).
    outside: HashSet<PathBuf>,
    /// The `tmp/` directories already swept by this process.
    swept: HashSet<PathBuf>,
    /// Set on the way out: no new run directory after the last one is removed.
    closed: bool,
    /// The shared lock on each cache this process opened (see the `gc` module).
    shared: HashMap<PathBuf, Option<File>>,
    /// Caches made for this process alone (see [`Cache::open`]), removed on the way out.
    throwaway: HashSet<PathBuf>,
}

fn run_dirs() -> MutexGuard<'static, RunDirs> {
    static RUN_DIRS: LazyLock<Mutex<RunDirs>> = LazyLock::new(Default::default);
    RUN_DIRS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A temporary file outside the cache, next to where its content goes (a `--tarball` file,
/// a blob copied into an OCI layout on another filesystem): removed with the run's
/// directories if the process ends while it exists, even where destructors do not run (the
/// watchdog after a signal). Dropping the guard only forgets the path; the file itself is
/// persisted or deleted by its owner.
pub struct Temporary(PathBuf);

impl Temporary {
    pub fn new(path: &Path) -> Temporary {
        run_dirs().outside.insert(path.to_path_buf());
        Temporary(path.to_path_buf())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        run_dirs().outside.remove(&self.0);
    }
}

/// The process's umask (read from `/proc/self/status`; 022 where it cannot be read).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// A new temporary file in `dir` named `.<prefix>.XXXXXX<suffix>`, created 0644 less the
/// umask (as any file a user's tool writes), for content that goes outside the cache.
pub fn temp_file_outside(dir: &Path, prefix: &str, suffix: &str) -> io::Result<(tempfile::NamedTempFile, Temporary)> {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{prefix}."))
        .suffix(suffix)
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    let guard = Temporary::new(temp.path());
    Ok((temp, guard))
}

/// Removes this process's run directories with everything in them. Called on the way out of
/// a run (also after a signal, when destructors may not run); later attempts to make a
/// temporary file fail.
pub fn remove_run_dirs() {
    let (dirs, outside, throwaway): (Vec<RunDir>, Vec<PathBuf>, Vec<PathBuf>) = {
        let mut dirs = run_dirs();
        dirs.closed = true;
        let throwaway: Vec<PathBuf> = dirs.throwaway.drain().collect();
        for root in &throwaway {
            dirs.shared.remove(root);
        }
        (dirs.live.drain().map(|(_, dir)| dir).collect(), dirs.outside.drain().collect(), throwaway)
    };
    for file in outside {
        let _ = std::fs::remove_file(file);
    }
    for dir in dirs {
        // A blocking task may still be creating a file in it: try again.
        for _ in 0..3 {
            if matches!(std::fs::remove_dir_all(&dir.path), Err(e) if e.kind() != io::ErrorKind::NotFound) {
                continue;
            }
            break;
        }
    }
    for root in throwaway {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// Removes the layers this run and others replaced that no record names any more, in each
/// cache this process opened, when no other run uses it and the last removal is old enough
/// (see the `gc` module). `goes_on`: the process keeps using the caches (a watch between
/// cycles) and takes its shared locks again.
pub fn sweep_superseded(goes_on: bool) {
    let roots: Vec<PathBuf> = run_dirs().shared.keys().cloned().collect();
    for root in roots {
        let (mut shared, own) = {
            let mut dirs = run_dirs();
            let own: Vec<PathBuf> = dirs.live.values().map(|dir| dir.path.clone()).collect();
            (dirs.shared.remove(&root).flatten(), own)
        };
        let _span = crate::timing::span(|| format!("removing replaced layers from {}", root.display()));
        gc::sweep(&root, &mut shared, &own, goes_on);
        if goes_on {
            run_dirs().shared.insert(root, shared);
        }
    }
}

/// Whether `entry` of `tmp/` is a run's directory.
fn is_run_dir(entry: &std::fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with("run-") && entry.file_type().is_ok_and(|t| t.is_dir())
}

/// The lock of a run directory whose run is gone; `None` while a run holds it (or when the
/// directory cannot be opened, which is taken for the same).
fn lock_if_dead(dir: &Path) -> Option<File> {
    let lock = File::open(dir).ok()?;
    lock.try_lock().ok()?;
    Some(lock)
}

/// Whether a run directory in `tmp`, other than `own`, belongs to a live run.
fn other_run_lives(tmp: &Path, own: &[PathBuf]) -> bool {
    let Ok(entries) = std::fs::read_dir(tmp) else { return false };
    entries
        .flatten()
        .any(|entry| is_run_dir(&entry) && !own.contains(&entry.path()) && lock_if_dead(&entry.path()).is_none())
}

/// Removes from `tmp/` what no live run holds: run directories whose lock is free, and loose
/// entries older than [`LOOSE_ENTRY_AGE`]. Best effort: what cannot be removed stays.
fn sweep(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_run_dir(&entry) {
            // Locked: a live run's. Free: its run died; remove it while holding the lock, so
            // that another sweeping run skips it.
            if let Some(_lock) = lock_if_dead(&path) {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| SystemTime::now().duration_since(modified).is_ok_and(|age| age > LOOSE_ENTRY_AGE));
        if old {
            let _ = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

#[cfg(test)]
mod tests;
