//! A Go build cache served over `GOCACHEPROG` (`kubectl ko gocache`): a local disk tier
//! (`disk.rs`, the files Go reads) in front of an optional registry tier (`remote.rs`) in the
//! repository named by `KO_GOCACHE_REPO`, so CI runners share what they compiled. The wire
//! format is `protocol.rs`; the request loop is `server.rs`. This file holds the settings and
//! the cache policy: local first, then the registry; a `put`'s output is stored locally and
//! answered, and only then its local entry written, its blob pushed in the background and its
//! registry entry kept for its shard, written when Go finishes (`shard.rs`). The registry tier
//! is best-effort: the first failure that is not a miss turns it off for the process with one
//! warning, and the build goes on locally.

mod disk;
mod entry;
mod protocol;
mod remote;
mod server;
mod shard;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use crate::digest::Digest;
use crate::output;
use crate::registry::{RegistryClient, RegistryError, Repository};
use crate::settings::Environment;

pub use disk::{Disk, Entry};
pub use protocol::ProtocolError;
pub use server::serve;

/// What [`GoCache::get_now`] can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Entry, PathBuf),
    Miss,
    /// Only the registry can tell ([`GoCache::get_remote`]).
    Ask,
}

use entry::{INLINE_MAX, PACKED_MAX, RemoteEntry, Stored};
use remote::{FetchError, Pack, Remote};

/// The repository of the registry tier; unset, the cache is local only.
pub const REPO_ENV: &str = "KO_GOCACHE_REPO";
/// Every line this program writes for the user names it so: `build`, `resolve` and `apply`
/// capture Go's stderr and pass these lines on ([`is_message`]).
const NAME: &str = "Go build cache";
/// The local tier's size bound (bytes, or with a K, M, G or T suffix).
pub const MAX_SIZE_ENV: &str = "KO_GOCACHE_MAX_SIZE";
const DEFAULT_MAX_BYTES: u64 = 10 << 30;
/// Uploads in flight at once.
const CONCURRENT_UPLOADS: usize = 8;
/// A lookup slower than this turns the registry tier off.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A download slower than this is a miss (and turns the tier off).
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum GoCacheError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("writing to go (stdout): {0}")]
    Answer(std::io::Error),
    #[error("{MAX_SIZE_ENV}={value:?} is not a size; write bytes or a number with K, M, G or T (e.g. 20G)")]
    MaxSize { value: String },
    #[error("{REPO_ENV}={value:?}: {reason}; name a repository, e.g. ghcr.io/team/gocache")]
    Repo { value: String, reason: String },
}

/// Where and how the cache lives, read from the environment once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The local tier: `<KOCACHE>/gocache`.
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub repo: Option<Repository>,
}

impl Settings {
    pub fn from_env(env: &Environment) -> Result<Settings, GoCacheError> {
        let max_bytes = match env.trimmed(MAX_SIZE_ENV) {
            Some(value) => parse_size(value).ok_or_else(|| GoCacheError::MaxSize { value: value.to_string() })?,
            None => DEFAULT_MAX_BYTES,
        };
        // Absolute: Go reads `DiskPath` from compile and link steps run in other directories.
        let dir = crate::cache::root_in(env).join("gocache");
        Ok(Settings { dir, max_bytes, repo: repository(env)? })
    }
}

/// `KO_GOCACHE_REPO`, checked, when it is set.
pub fn repository(env: &Environment) -> Result<Option<Repository>, GoCacheError> {
    let Some(value) = env.trimmed(REPO_ENV) else { return Ok(None) };
    let refused = |reason: String| GoCacheError::Repo { value: value.to_string(), reason };
    if value.contains("://") {
        return Err(refused("a repository is written without a scheme (no http:// or https://)".into()));
    }
    if !value.trim_end_matches('/').contains('/') {
        return Err(refused("that is a registry, not a repository in it".into()));
    }
    Repository::parse(value).map(Some).map_err(|e| refused(e.reason))
}

fn parse_size(value: &str) -> Option<u64> {
    let upper = value.to_ascii_uppercase();
    let trimmed = upper.trim_end_matches("IB").trim_end_matches('B');
    let (digits, shift) = match trimmed.char_indices().last()? {
        (i, 'K') => (&trimmed[..i], 10),
        (i, 'M') => (&trimmed[..i], 20),
        (i, 'G') => (&trimmed[..i], 30),
        (i, 'T') => (&trimmed[..i], 40),
        _ => (trimmed, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Whether a line of Go's stderr is one of this program's warnings, timings or details.
pub fn is_message(line: &str) -> bool {
    line.contains(NAME) && ["warning: ", "timing: ", "Go build cache: "].iter().any(|p| line.starts_with(p))
}

fn slow(what: &str, limit: Duration) -> String {
    format!("{what} took longer than {}s", limit.as_secs())
}

/// An output stored where Go reads it, its entry not yet written.
pub struct Put {
    action_id: Vec<u8>,
    output_id: Vec<u8>,
    body: Vec<u8>,
    /// Where Go reads the output.
    pub path: PathBuf,
}

/// What goes up in the background.
enum Upload {
    /// One output, as a blob (or gzipped).
    Output {
        action_id: Vec<u8>,
        entry: RemoteEntry,
        path: PathBuf,
    },
    Pack(Pack),
}

/// The two tiers and the state of the registry one.
pub struct GoCache {
    disk: Disk,
    remote: Option<Remote>,
    remote_off: AtomicBool,
    uploads: Arc<Semaphore>,
    running: Mutex<JoinSet<()>>,
    /// Whether the registry answered the first lookup: every lookup waits for it, so a
    /// registry that is down costs one failed lookup (with its retries), not one per request.
    reachable: OnceCell<bool>,
    /// Set when the registry denied a push.
    read_only: AtomicBool,
    /// Outputs whose blob in the registry was found corrupt: pushed again in the gzip form.
    corrupt: Mutex<HashSet<Digest>>,
    /// Corrupt blobs already warned about.
    warned: Mutex<HashSet<Digest>>,
    /// Set once a failure to record an entry on disk was warned about (a full disk fails
    /// every put the same way).
    disk_warned: AtomicBool,
    /// Set once a wrong entry was warned about (a shard spoilt once holds many).
    entry_warned: AtomicBool,
}

impl GoCache {
    /// A cache over `settings`; the registry tier uses `client` (the suite's client, with its
    /// keychain, TLS options and retries) when a repository is set.
    pub fn new(settings: Settings, client: Option<Arc<RegistryClient>>) -> GoCache {
        let remote = settings.repo.zip(client).map(|(repo, client)| Remote::new(client, repo));
        GoCache {
            disk: Disk::new(settings.dir, settings.max_bytes),
            remote,
            remote_off: AtomicBool::new(false),
            uploads: Arc::new(Semaphore::new(CONCURRENT_UPLOADS)),
            running: Mutex::new(JoinSet::new()),
            reachable: OnceCell::new(),
            read_only: AtomicBool::new(false),
            corrupt: Mutex::new(HashSet::new()),
            warned: Mutex::new(HashSet::new()),
            disk_warned: AtomicBool::new(false),
            entry_warned: AtomicBool::new(false),
        }
    }

    fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref().filter(|_| !self.remote_off.load(Ordering::Relaxed))
    }

    /// Turns the registry tier off, saying so once.
    fn turn_off(&self, why: impl std::fmt::Display) {
        if !self.remote_off.swap(true, Ordering::Relaxed)
            && let Some(remote) = &self.remote
        {
            let repo = remote.repository();
            output::warn(format!(
                "the shared Go build cache in {}/{} is off for this build: {why}; building with the local cache only",
                repo.registry, repo.path
            ));
        }
    }

    /// Reaches the registry once (discovery, credentials, then every shard of entries read at
    /// once), before Go asks for anything if called early, so that most lookups are answered
    /// from memory; `false`, with the warning, when the first shard cannot be read in time.
    /// The other shards get a lookup's time of their own, all at once; one that fails or is
    /// slow then is read again, alone, at the first lookup that needs it.
    pub async fn warm_up(&self) -> bool {
        let Some(remote) = self.remote() else { return false };
        *self
            .reachable
            .get_or_init(|| async {
                // One shard first (discovery and credentials, once), then the rest at once.
                match tokio::time::timeout(LOOKUP_TIMEOUT, remote.lookup(&[0; 32])).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return self.failed(e).unwrap_or(false),
                    Err(_) => {
                        return self
                            .failed(slow("reading the first shard of entries", LOOKUP_TIMEOUT))
                            .unwrap_or(false);
                    }
                }
                let _unread_later_if_slow = tokio::time::timeout(LOOKUP_TIMEOUT, remote.read_shards()).await;
                true
            })
            .await
    }

    /// What can be told of an action without waiting: its entry and output when they are on
    /// disk, a miss when the registry tier is off or its shard (already read) has no entry.
    pub fn get_now(&self, action_id: &[u8]) -> Lookup {
        if let Some(entry) = self.disk.get(action_id) {
            let path = self.disk.output_path(&entry.output_id);
            return Lookup::Found(entry, path);
        }
        let Some(remote) = self.remote() else { return Lookup::Miss };
        match self.reachable.get() {
            Some(false) => Lookup::Miss,
            Some(true) if remote.known_absent(action_id) => Lookup::Miss,
            _ => Lookup::Ask,
        }
    }

    /// The entry of an action and the path of its output: local first, then the registry.
    #[cfg(test)]
    pub async fn get(&self, action_id: &[u8]) -> Option<(Entry, PathBuf)> {
        match self.get_now(action_id) {
            Lookup::Found(entry, path) => Some((entry, path)),
            Lookup::Miss => None,
            Lookup::Ask => self.get_remote(action_id).await,
        }
    }

    /// The registry's entry of an action not on disk, its output downloaded.
    pub async fn get_remote(&self, action_id: &[u8]) -> Option<(Entry, PathBuf)> {
        if !self.warm_up().await {
            return None;
        }
        let remote = self.remote()?;
        let found = match tokio::time::timeout(LOOKUP_TIMEOUT, remote.lookup(action_id)).await {
            Ok(Ok(found)) => found?,
            Ok(Err(e)) => return self.failed(e),
            Err(_) => return self.failed(slow("a lookup", LOOKUP_TIMEOUT)),
        };
        self.download(remote, action_id, found).await
    }

    fn failed<T>(&self, why: impl std::fmt::Display) -> Option<T> {
        self.turn_off(why);
        None
    }

    /// Makes a registry entry local: its output written and verified unless it is here.
    async fn download(&self, remote: &Remote, action_id: &[u8], found: RemoteEntry) -> Option<(Entry, PathBuf)> {
        let entry = Entry { output_id: hex::decode(found.output.hex()).ok()?, size: found.size };
        if !self.disk.has_output(&entry) {
            let temp = self.disk.temp_file().map_err(|e| output::warn(format!("Go build cache: {e}"))).ok()?;
            match tokio::time::timeout(FETCH_TIMEOUT, remote.fetch(&found, &temp)).await {
                Ok(Ok(())) => {}
                Ok(Err(FetchError::Corrupt { output, stored, got })) => {
                    return self.corrupt_found(remote, action_id, output, stored, got);
                }
                Ok(Err(FetchError::BadEntry { output, got })) => return self.bad_entry(remote, action_id, output, got),
                Ok(Err(FetchError::Gone(_))) => return None,
                Ok(Err(FetchError::Registry(e))) => return self.failed(e),
                Ok(Err(e @ FetchError::File { .. })) => return self.failed(e),
                Err(_) => return self.failed(slow("a download", FETCH_TIMEOUT)),
            }
            let size = std::fs::metadata(&temp).map(|m| m.len()).ok()?;
            if size != entry.size {
                return None;
            }
            self.disk.adopt(temp, &entry).ok()?;
        }
        self.disk.record(action_id, &entry).ok()?;
        Some((entry.clone(), self.disk.output_path(&entry.output_id)))
    }

    /// A miss, with one warning per corrupt blob. The registry cannot replace a blob under its
    /// digest, so when Go has rebuilt the output, its entry is pushed again in the gzip form,
    /// which names other bytes: the next reader of this action gets a good entry.
    fn corrupt_found<T>(
        &self,
        remote: &Remote,
        action_id: &[u8],
        output: Digest,
        stored: Digest,
        got: Digest,
    ) -> Option<T> {
        remote.forget(&stored);
        self.corrupt.lock().expect("the corrupt set is never poisoned").insert(output.clone());
        // One warning per blob: a corrupt pack holds many outputs.
        if self.warned.lock().expect("the warned set is never poisoned").insert(stored.clone()) {
            let repo = remote.repository();
            output::warn(format!(
                "the shared Go build cache in {}/{} holds a corrupt blob {stored} (its bytes hash to {got}; action {}): \
                 not used; Go builds it here and this build pushes the entry again in another form. The registry keeps \
                 the bad blob; to remove it, delete the repository (the next builds fill it again)",
                repo.registry,
                repo.path,
                hex::encode(action_id)
            ));
        }
        None
    }

    /// A miss, with one warning per build for entries whose inline bytes, or pack offset or
    /// size, do not give their output. Go builds the output here and its entry is written
    /// again (in whatever form fits it) when the shards are.
    fn bad_entry<T>(&self, remote: &Remote, action_id: &[u8], output: Digest, got: Digest) -> Option<T> {
        if !self.entry_warned.swap(true, Ordering::Relaxed) {
            let repo = remote.repository();
            output::warn(format!(
                "the shared Go build cache in {repo} has entries that do not give their outputs (the first: action {}, \
                 output {output}, got {got}): not used; Go builds them here and this build writes their entries again",
                hex::encode(action_id)
            ));
        }
        None
    }

    /// Stores an output where Go reads it (blocking). Go waits for this answer, so the rest of
    /// the put ([`GoCache::finish_put`]: the action's entry, the registry) comes after it.
    pub fn put(&self, action_id: Vec<u8>, output_id: Vec<u8>, body: Vec<u8>) -> std::io::Result<Put> {
        let path = self.disk.store_output(&output_id, &body)?;
        Ok(Put { action_id, output_id, body, path })
    }

    /// Records a stored output's action locally (blocking) and hands it to the registry tier
    /// (inline in its shard, in a pack or as a blob, pushed in the background on the runtime
    /// this is called from).
    pub fn finish_put(self: &Arc<Self>, put: Put) {
        let Put { action_id, output_id, body, path } = put;
        let size = body.len() as u64;
        let entry = Entry { output_id: output_id.clone(), size };
        if let Err(e) = self.disk.record(&action_id, &entry)
            && !self.disk_warned.swap(true, Ordering::Relaxed)
        {
            output::warn(format!("Go build cache: {e} (further such errors of this build are not shown)"));
        }
        let Some(remote) = self.remote() else { return };
        let digest = Digest::of(&body);
        // Go's output ID is the sha256 of the bytes; anything else is not shared.
        if digest.hex() != hex::encode(&output_id) {
            return;
        }
        let corrupt = self.corrupt.lock().expect("the corrupt set is never poisoned").contains(&digest);
        if body.len() <= INLINE_MAX {
            let stored = Stored::Inline(bytes::Bytes::from(body));
            remote.record(&action_id, RemoteEntry { output: digest, size, stored });
        } else if body.len() <= PACKED_MAX && !corrupt {
            if let Some(pack) = remote.add_to_pack(&action_id, digest, &body) {
                self.spawn_upload(Upload::Pack(pack));
            }
        } else {
            // A corrupt blob cannot be replaced under its digest: the entry names other bytes.
            let stored = if corrupt { Stored::Gzip { blob: digest.clone(), size } } else { Stored::Blob };
            let entry = RemoteEntry { output: digest, size, stored };
            self.spawn_upload(Upload::Output { action_id, entry, path });
        }
    }

    /// Runs an upload in the background, bounded, once the registry answered.
    fn spawn_upload(self: &Arc<Self>, upload: Upload) {
        let (cache, permits) = (self.clone(), self.uploads.clone());
        self.running.lock().expect("the upload set is never poisoned").spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            if cache.warm_up().await {
                cache.upload(upload).await;
            }
        });
    }

    /// Pushes an output or a pack and keeps the entries it makes, unless the tier is off or
    /// read-only.
    async fn upload(&self, upload: Upload) {
        let Some(remote) = self.remote().filter(|_| !self.read_only.load(Ordering::Relaxed)) else { return };
        let done = match upload {
            Upload::Output { action_id, entry, path } => {
                remote.upload(&entry, &path).await.map(|entry| remote.record(&action_id, entry))
            }
            Upload::Pack(pack) => remote.upload_pack(pack).await,
        };
        if let Err(e) = done {
            self.upload_failed(e);
        }
    }

    /// After the last request: trims the local tier to its bound.
    pub fn evict(&self) {
        let freed = self.disk.evict();
        if freed > 0 {
            output::detail(format!("Go build cache: freed {freed} bytes in {}", self.disk.root().display()));
        }
    }

    /// A push the registry denied leaves the tier read-only (a runner with pull access only
    /// still reads the cache); any other failure turns the tier off.
    fn upload_failed(&self, error: RegistryError) {
        // 401 and 403 (no push access), 405 (a registry in read-only mode).
        if !matches!(error, RegistryError::Denied { .. }) && error.status() != Some(405) {
            return self.turn_off(error);
        }
        if !self.read_only.swap(true, Ordering::Relaxed)
            && let Some(remote) = &self.remote
        {
            let repo = remote.repository();
            output::warn(format!(
                "the shared Go build cache in {}/{} is read-only for this build: {error}",
                repo.registry, repo.path
            ));
        }
    }

    /// Waits for the uploads still running and writes the new entries' shards, in all at most
    /// `limit`; what is left then is dropped.
    pub async fn finish_uploads(&self, limit: Duration) {
        let mut running = std::mem::take(&mut *self.running.lock().expect("the upload set is never poisoned"));
        // A tier that is off, or whose registry was never reached (down, or slow to answer as
        // Go started), gets no last pack nor shards; the uploads still running are dropped.
        if !self.warm_up().await {
            return;
        }
        let (left, started) = (running.len(), std::time::Instant::now());
        let all = async {
            while running.join_next().await.is_some() {}
            if let Some(pack) = self.remote().and_then(Remote::take_pack) {
                self.upload(Upload::Pack(pack)).await;
            }
            self.write_entries().await
        };
        match tokio::time::timeout(limit, all).await {
            Err(_) => self.turn_off(format!("uploads were still running {}s after go finished", limit.as_secs())),
            Ok(shards) if left > 0 || shards > 0 => output::detail(format!(
                "Go build cache: {} ms for the last uploads and {shards} shard(s) of entries",
                started.elapsed().as_millis()
            )),
            Ok(_) => {}
        }
    }

    /// Writes the shards that got entries, one process of this machine at a time (a lock
    /// file in the local tier); returns how many were written.
    async fn write_entries(&self) -> usize {
        let Some(remote) = self.remote().filter(|r| r.has_pending() && !self.read_only.load(Ordering::Relaxed)) else {
            return 0;
        };
        let lock_path = self.disk.root().join("shards.lock");
        let locked = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await;
        // Without the lock (a filesystem without flock) the write still goes on, unserialised.
        let _lock = locked.ok().and_then(Result::ok);
        match remote.write_pending().await {
            Ok(shards) => shards,
            Err(e) => {
                self.upload_failed(e);
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registry_that_is_down_leaves_the_local_tier_working() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs([("HOME", dir.path().join("home"))]);
        let keychain = crate::auth::Keychain::new(&env).unwrap();
        let client = RegistryClient::new(keychain, crate::registry::ClientOptions::default()).unwrap();
        let repo = Some(Repository::parse("127.0.0.1:1/gocache").unwrap());
        let settings = Settings { dir: dir.path().join("cache"), max_bytes: 1 << 30, repo };
        let cache = Arc::new(GoCache::new(settings, Some(Arc::new(client))));
        assert!(!cache.warm_up().await, "nothing listens on port 1");
        assert!(cache.remote().is_none(), "the registry tier is off");
        assert_eq!(cache.get(&[1; 32]).await, None);
        let body = b"compiled".to_vec();
        let output_id = hex::decode(Digest::of(&body).hex()).unwrap();
        let put = cache.put(vec![1; 32], output_id.clone(), body).unwrap();
        let path = put.path.clone();
        cache.finish_put(put);
        cache.finish_uploads(Duration::from_secs(5)).await;
        let (entry, got) = cache.get(&[1; 32]).await.unwrap();
        assert_eq!((entry.output_id, got), (output_id, path));
    }

    #[test]
    fn the_programs_own_lines_are_told_from_gos() {
        assert!(is_message("warning: the shared Go build cache in r/c is off for this build: down"));
        assert!(is_message("warning: Go build cache: /c/tmp: No space left on device"));
        assert!(is_message("timing: Go build cache: 3 hits answered in 0.1 ms"));
        assert!(is_message("Go build cache: freed 10 bytes in /c"));
        assert!(!is_message("go: downloading golang.org/x/net v0.38.0"));
        assert!(!is_message("# example.com/app: the Go build cache is a directory"));
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("20G"), Some(20 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("3k"), Some(3 << 10));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn settings_come_from_kocache_and_the_variables() {
        let env = Environment::from_pairs([("KOCACHE", "/k"), (REPO_ENV, "127.0.0.1:5000/gocache")]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.dir, PathBuf::from("/k/gocache"));
        assert_eq!(settings.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(settings.repo.unwrap().path, "gocache");
        for (value, reason) in [("127.0.0.1:5000", "not a repository in it"), ("http://r.io/c", "without a scheme")] {
            let err = repository(&Environment::from_pairs([(REPO_ENV, value)])).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
        let bad = Environment::from_pairs([(MAX_SIZE_ENV, "huge")]);
        assert!(Settings::from_env(&bad).unwrap_err().to_string().contains("KO_GOCACHE_MAX_SIZE"));
        let local = Settings::from_env(&Environment::from_pairs([("KOCACHE", "/k")])).unwrap();
        assert_eq!(local.repo, None);
        // Go hands `DiskPath` to steps run elsewhere: a relative KOCACHE is made absolute.
        let relative = Settings::from_env(&Environment::from_pairs([("KOCACHE", "rel")])).unwrap();
        assert_eq!(relative.dir, std::env::current_dir().unwrap().join("rel/gocache"));
    }
}
