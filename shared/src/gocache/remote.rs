//! The registry tier of the Go build cache, in one repository (`KO_GOCACHE_REPO`).
//!
//! - The map from actions to outputs is in 16 shard manifests (`shard.rs`). A lookup reads the
//!   action's shard, once per process, so a build costs at most 16 lookups, a miss needs no
//!   request of its own once its shard is read, and nothing is ever listed. A small output
//!   travels in its shard.
//! - An output of up to 1 MiB that is not inline goes up in a pack with the outputs put
//!   around it (`entry.rs`), one upload of about 4 MiB; a pack is new bytes, so it is not
//!   asked about first. A pack is downloaded once per process and each output cut from it.
//! - A larger output is a blob addressed by its sha256, which is Go's output ID. It is
//!   uploaded as Go puts it, only after a `HEAD` says the repository lacks it, and a blob this
//!   process already pushed or found is not asked about again, so a blob any runner pushed is
//!   never pushed again. Every download is checked against the output ID.
//! - New entries are kept until Go finishes, then each shard that got some is written once:
//!   read again, merged, put, and read back. A shard that another runner rewrote in between
//!   without this run's entries is merged and put again (a registry has no compare-and-swap,
//!   so two runners that write one shard at the same instant can still lose an entry: it
//!   costs a compilation later, never a wrong output). Runs on one machine write one at a
//!   time (a lock file in the local tier).
//!
//! The tier is best-effort: any failure other than a miss, a corrupt blob or a wrong entry turns it off
//! for the rest of the process with one warning (see `mod.rs`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::OnceCell;

use super::entry::{PACK_TARGET, Record, RemoteEntry, Stored};
use super::shard::{self, EMPTY_BLOB, MANIFEST_MEDIA_TYPE, SHARDS, Shard};
use crate::digest::{Digest, HashingWriter};
use crate::registry::{BlobBody, Reference, RegistryClient, RegistryError, Repository, jitter};

/// How many times a shard is written when other runners keep rewriting it.
const WRITE_ATTEMPTS: u32 = 3;

/// Why an entry's output could not be made local.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The bytes do not hash to the output ID: not used.
    #[error("the bytes of output {output} (stored as {stored}) hash to {got}")]
    Corrupt { output: Digest, stored: Digest, got: Digest },
    /// The entry itself is wrong (inline bytes, or a pack offset or size, that do not give
    /// the output): not used, and written again once Go has built the output.
    #[error("the entry of output {output} gives bytes that hash to {got}")]
    BadEntry { output: Digest, got: Digest },
    /// The entry names a blob the repository no longer has (retention removed it): a miss.
    #[error("blob {0} is gone")]
    Gone(Digest),
    #[error(transparent)]
    Registry(RegistryError),
    #[error("writing {path}: {source}")]
    File { path: std::path::PathBuf, source: std::io::Error },
}

pub struct Remote {
    client: Arc<RegistryClient>,
    repo: Repository,
    /// Blobs known to be in the repository (pushed, or found by `HEAD`); one cell per digest,
    /// so two puts of one output at once ask and upload once.
    blobs: Mutex<HashMap<Digest, Arc<OnceCell<()>>>>,
    /// The shards as first read by this process.
    shards: [OnceCell<Arc<Shard>>; SHARDS],
    /// The entries this process made, by shard, until they are written.
    pending: Mutex<BTreeMap<usize, Shard>>,
    /// The pack being filled.
    packing: Mutex<Pack>,
    /// Packs downloaded by this process, by digest; the file goes when the process ends.
    packs: Mutex<HashMap<Digest, Arc<OnceCell<Arc<tempfile::TempPath>>>>>,
    /// Packs found corrupt, with the digest their bytes had.
    bad_packs: Mutex<HashMap<Digest, Digest>>,
    /// Packs the registry said it does not have: every output in one is a miss, asked once.
    gone_packs: Mutex<HashSet<Digest>>,
}

/// Outputs that go up together, one after the other.
#[derive(Default)]
pub struct Pack {
    bytes: Vec<u8>,
    /// Action, output, and where the output starts in `bytes`.
    members: Vec<(Vec<u8>, Digest, u64)>,
}

impl Remote {
    pub fn new(client: Arc<RegistryClient>, repo: Repository) -> Remote {
        Remote {
            client,
            repo,
            blobs: Mutex::new(HashMap::new()),
            shards: Default::default(),
            pending: Mutex::new(BTreeMap::new()),
            packing: Mutex::new(Pack::default()),
            packs: Mutex::new(HashMap::new()),
            bad_packs: Mutex::new(HashMap::new()),
            gone_packs: Mutex::new(HashSet::new()),
        }
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The entry of an action: `None` when the registry has none (its shard read once).
    pub async fn lookup(&self, action_id: &[u8]) -> Result<Option<RemoteEntry>, RegistryError> {
        Ok(self.shard(shard::index_of(action_id)).await?.get(action_id).cloned())
    }

    /// Reads every shard not read yet, at once; one that fails stays unread (the first lookup
    /// that needs it reads it again).
    pub async fn read_shards(&self) {
        futures_util::future::join_all((0..SHARDS).map(|index| self.shard(index))).await;
    }

    /// True when the action's shard was read and has no entry for it.
    pub fn known_absent(&self, action_id: &[u8]) -> bool {
        self.shards[shard::index_of(action_id)].get().is_some_and(|shard| shard.get(action_id).is_none())
    }

    /// A shard as first read by this process.
    async fn shard(&self, index: usize) -> Result<&Arc<Shard>, RegistryError> {
        self.shards[index]
            .get_or_try_init(|| async { Ok::<_, RegistryError>(Arc::new(self.read_shard(index).await?.1)) })
            .await
    }

    /// A shard as the registry holds it now, with its manifest's bytes (`None` when there is
    /// none yet); a manifest that is not a shard reads as an empty one.
    async fn read_shard(&self, index: usize) -> Result<(Option<bytes::Bytes>, Shard), RegistryError> {
        let reference = Reference { repository: self.repo.clone(), tag: Some(shard::tag(index)), digest: None };
        Ok(match self.client.manifest_if_present(&reference).await? {
            Some(fetched) => {
                let shard = Shard::parse(&fetched.bytes).unwrap_or_default();
                (Some(fetched.bytes), shard)
            }
            None => (None, Shard::default()),
        })
    }

    /// Keeps an entry (its blob already pushed) to be written with its shard.
    pub fn record(&self, action_id: &[u8], entry: RemoteEntry) {
        let time = now();
        let mut pending = self.pending.lock().expect("the pending entries are never poisoned");
        pending.entry(shard::index_of(action_id)).or_default().insert(action_id, Record { entry, time });
    }

    /// Adds an output to the pack being filled; returns the pack when it is full.
    pub fn add_to_pack(&self, action_id: &[u8], output: Digest, data: &[u8]) -> Option<Pack> {
        let mut packing = self.packing.lock().expect("the pack is never poisoned");
        let offset = packing.bytes.len() as u64;
        packing.bytes.extend_from_slice(data);
        packing.members.push((action_id.to_vec(), output, offset));
        (packing.bytes.len() >= PACK_TARGET).then(|| std::mem::take(&mut *packing))
    }

    /// The pack being filled, unless it is empty.
    pub fn take_pack(&self) -> Option<Pack> {
        let pack = std::mem::take(&mut *self.packing.lock().expect("the pack is never poisoned"));
        (!pack.members.is_empty()).then_some(pack)
    }

    /// Uploads a pack, then keeps its outputs' entries.
    pub async fn upload_pack(&self, pack: Pack) -> Result<(), RegistryError> {
        let Pack { bytes, members } = pack;
        let bytes = bytes::Bytes::from(bytes);
        let (digest, size) = (Digest::of(&bytes), bytes.len() as u64);
        self.client.upload_blob(&self.repo, &digest, size, BlobBody::Bytes(bytes)).await?;
        for (i, (action_id, output, offset)) in members.iter().enumerate() {
            let end = members.get(i + 1).map_or(size, |next| next.2);
            let stored = Stored::Packed { pack: digest.clone(), size, offset: *offset };
            self.record(action_id, RemoteEntry { output: output.clone(), size: end - offset, stored });
        }
        Ok(())
    }

    /// True when entries wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.pending.lock().expect("the pending entries are never poisoned").is_empty()
    }

    /// Writes every shard that got entries, the shards side by side; returns how many.
    pub async fn write_pending(&self) -> Result<usize, RegistryError> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("the pending entries are never poisoned"));
        if pending.is_empty() {
            return Ok(0);
        }
        let empty = Digest::of(EMPTY_BLOB);
        self.push_blob(&empty, EMPTY_BLOB.len() as u64, BlobBody::Bytes(bytes::Bytes::from_static(EMPTY_BLOB))).await?;
        let writes = pending.iter().map(|(index, ours)| self.write_shard(*index, ours));
        for written in futures_util::future::join_all(writes).await {
            written?;
        }
        Ok(pending.len())
    }

    /// Merges `ours` into a shard: read, merged, put and read back, again while another
    /// runner's write replaced it without our entries. When the registry refuses the shard
    /// because a blob it names is gone (deleted by hand or by a retention rule), the entries
    /// that name missing blobs are dropped and the shard is put again.
    async fn write_shard(&self, index: usize, ours: &Shard) -> Result<(), RegistryError> {
        let now = now();
        // Copied only if blobs it names turn out to be gone.
        let (mut ours, mut pruned) = (Cow::Borrowed(ours), false);
        let (_, mut current) = self.read_shard(index).await?;
        for attempt in 0..WRITE_ATTEMPTS {
            if current.covers(&ours) {
                return Ok(());
            }
            current.merge(&ours);
            current.trim(now);
            let manifest = match self.put_shard(index, &current).await {
                Err(e) if !pruned && names_unknown_blob(&e) => {
                    pruned = true;
                    let gone = self.missing_blobs(&current.blobs()).await?;
                    current.drop_blobs(&gone);
                    ours.to_mut().drop_blobs(&gone);
                    self.put_shard(index, &current).await?
                }
                put => put?,
            };
            let (bytes, now_held) = self.read_shard(index).await?;
            if bytes.as_deref() == Some(&manifest[..]) {
                return Ok(());
            }
            current = now_held;
            // Another runner wrote in between: let it finish before merging again.
            tokio::time::sleep(Duration::from_millis(50 + 100 * u64::from(attempt)) + jitter()).await;
        }
        Ok(())
    }

    /// Puts a shard under its tag; returns the manifest's bytes.
    async fn put_shard(&self, index: usize, shard: &Shard) -> Result<bytes::Bytes, RegistryError> {
        let manifest = shard.to_manifest();
        self.client.put_manifest(&self.repo, &shard::tag(index), MANIFEST_MEDIA_TYPE, &manifest).await?;
        Ok(manifest)
    }

    /// Those of `blobs` the repository does not have: a `HEAD` each, a few at a time, but for
    /// blobs this process pushed or found, and one `HEAD` for a blob that several shards
    /// written at once ask about (the same cells as [`Remote::push_blob`], which uploads a
    /// missing one again when Go puts it).
    async fn missing_blobs(&self, blobs: &BTreeSet<Digest>) -> Result<BTreeSet<Digest>, RegistryError> {
        let heads = blobs.iter().map(|digest| async move {
            let cell =
                self.blobs.lock().expect("the blob set is never poisoned").entry(digest.clone()).or_default().clone();
            let found = cell
                .get_or_try_init(|| async {
                    match self.client.blob_exists(&self.repo, digest).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(None),
                        Err(e) => Err(Some(e)),
                    }
                })
                .await;
            match found {
                Ok(()) => Ok(None),
                Err(None) => Ok(Some(digest.clone())),
                Err(Some(e)) => Err(e),
            }
        });
        let found: Vec<Option<Digest>> = stream::iter(heads).buffer_unordered(8).try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Writes an entry's output into `dest`, checked against the output ID.
    pub async fn fetch(&self, entry: &RemoteEntry, dest: &Path) -> Result<(), FetchError> {
        let file_error = |source| FetchError::File { path: dest.to_path_buf(), source };
        // A corrupt pack or gzip blob is reported for the output asked for.
        let for_output = |e| match e {
            FetchError::Corrupt { stored, got, .. } => {
                FetchError::Corrupt { output: entry.output.clone(), stored, got }
            }
            other => other,
        };
        // `Some(blob)`: the bytes came from a blob checked on download, so a mismatch is the
        // blob's (a gzip blob that unpacks to other bytes); `None`: the entry's own fault.
        let (stored, got) = match &entry.stored {
            Stored::Inline(data) => {
                tokio::fs::write(dest, data).await.map_err(file_error)?;
                (None, Digest::of(data))
            }
            Stored::Blob => return self.download(&entry.output, dest).await,
            Stored::Packed { pack, offset, .. } => {
                let file = self.pack_file(pack, dest).await.map_err(for_output)?;
                let (from, start, length) = (file.to_path_buf(), *offset, entry.size);
                (None, write_blocking(dest, move |to| cut(&from, start, length, to)).await?)
            }
            Stored::Gzip { blob, .. } => {
                let packed = temp_beside(dest)?;
                self.download(blob, &packed).await.map_err(for_output)?;
                (Some(blob), write_blocking(dest, move |to| gunzip(&packed, to)).await?)
            }
        };
        if got != entry.output {
            let output = entry.output.clone();
            return Err(match stored {
                Some(blob) => FetchError::Corrupt { output, stored: blob.clone(), got },
                None => FetchError::BadEntry { output, got },
            });
        }
        Ok(())
    }

    /// A pack's file, downloaded (next to `dest`) the first time one of its outputs is asked for.
    async fn pack_file(&self, pack: &Digest, dest: &Path) -> Result<Arc<tempfile::TempPath>, FetchError> {
        if let Some(got) = self.bad_packs.lock().expect("the bad packs are never poisoned").get(pack) {
            return Err(FetchError::Corrupt { output: pack.clone(), stored: pack.clone(), got: got.clone() });
        }
        if self.gone_packs.lock().expect("the gone packs are never poisoned").contains(pack) {
            return Err(FetchError::Gone(pack.clone()));
        }
        let cell = self.packs.lock().expect("the pack set is never poisoned").entry(pack.clone()).or_default().clone();
        let downloaded = cell
            .get_or_try_init(|| async {
                let temp = temp_beside(dest)?;
                self.download(pack, &temp).await?;
                Ok(Arc::new(temp))
            })
            .await;
        match &downloaded {
            Err(FetchError::Corrupt { got, .. }) => {
                self.bad_packs.lock().expect("the bad packs are never poisoned").insert(pack.clone(), got.clone());
            }
            Err(FetchError::Gone(_)) => {
                self.gone_packs.lock().expect("the gone packs are never poisoned").insert(pack.clone());
            }
            _ => {}
        }
        downloaded.cloned()
    }

    async fn download(&self, blob: &Digest, dest: &Path) -> Result<(), FetchError> {
        match self.client.fetch_blob(&self.repo, blob, dest).await {
            Ok(()) => Ok(()),
            Err(RegistryError::WrongContent { expected, got, .. }) => {
                Err(FetchError::Corrupt { output: expected.clone(), stored: expected, got })
            }
            Err(e) if e.is_absent() => Err(FetchError::Gone(blob.clone())),
            Err(e) => Err(FetchError::Registry(e)),
        }
    }

    /// Pushes the blob an entry needs unless the repository has it, and returns the entry to
    /// record; `body` is the output's file. A gzip entry is made here, from `body`. (Inline
    /// and packed entries need nothing here: see `record` and `upload_pack`.)
    pub async fn upload(&self, entry: &RemoteEntry, body: &Path) -> Result<RemoteEntry, RegistryError> {
        Ok(match &entry.stored {
            Stored::Inline(_) | Stored::Packed { .. } => entry.clone(),
            Stored::Blob => {
                self.push_blob(&entry.output, entry.size, BlobBody::File(body)).await?;
                entry.clone()
            }
            Stored::Gzip { .. } => {
                let packed = gzip(body).await.map_err(|e| self.file_error(body, e))?;
                let (blob, size) = (Digest::of(&packed), packed.len() as u64);
                self.push_blob(&blob, size, BlobBody::Bytes(packed)).await?;
                RemoteEntry { stored: Stored::Gzip { blob, size }, ..entry.clone() }
            }
        })
    }

    fn file_error(&self, path: &Path, source: std::io::Error) -> RegistryError {
        let operation = "packing a Go build output".to_string();
        RegistryError::File { registry: self.repo.registry.clone(), operation, path: path.to_path_buf(), source }
    }

    /// A blob, uploaded unless this process or a `HEAD` knows the repository has it.
    async fn push_blob(&self, digest: &Digest, size: u64, body: BlobBody<'_>) -> Result<(), RegistryError> {
        let cell =
            self.blobs.lock().expect("the blob set is never poisoned").entry(digest.clone()).or_default().clone();
        cell.get_or_try_init(|| async {
            if !self.client.blob_exists(&self.repo, digest).await? {
                self.client.upload_blob(&self.repo, digest, size, body).await?;
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Forgets that the repository has a blob (it was found corrupt).
    pub fn forget(&self, digest: &Digest) {
        self.blobs.lock().expect("the blob set is never poisoned").remove(digest);
    }
}

/// True when the registry refused a manifest because a blob it names is not in the
/// repository (`MANIFEST_BLOB_UNKNOWN` in the distribution spec; `BLOB_UNKNOWN` from some).
fn names_unknown_blob(e: &RegistryError) -> bool {
    matches!(e.code(), Some("MANIFEST_BLOB_UNKNOWN" | "BLOB_UNKNOWN"))
}

async fn gzip(body: &Path) -> std::io::Result<bytes::Bytes> {
    let path = body.to_path_buf();
    let packed = tokio::task::spawn_blocking(move || {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::copy(&mut std::fs::File::open(&path)?, &mut encoder)?;
        encoder.finish()
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(bytes::Bytes::from(packed))
}

/// Seconds since the epoch: when an entry was written.
fn now() -> u64 {
    u64::try_from(crate::time::now_unix()).unwrap_or(0)
}

/// A temporary file in `dest`'s directory (removed when dropped).
fn temp_beside(dest: &Path) -> Result<tempfile::TempPath, FetchError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let file =
        tempfile::NamedTempFile::new_in(dir).map_err(|source| FetchError::File { path: dest.to_path_buf(), source })?;
    Ok(file.into_temp_path())
}

/// Runs `write` on a blocking thread to make `dest`; returns the digest of what it wrote.
async fn write_blocking(
    dest: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<Digest> + Send + 'static,
) -> Result<Digest, FetchError> {
    let to = dest.to_path_buf();
    let file_error = |source| FetchError::File { path: dest.to_path_buf(), source };
    tokio::task::spawn_blocking(move || write(&to))
        .await
        .map_err(|e| file_error(std::io::Error::other(e)))?
        .map_err(file_error)
}

/// Copies `length` bytes of `pack` from `offset` into `dest` (fewer where the pack ends
/// first, as an entry with a wrong offset or size asks); returns the digest of what was copied.
fn cut(pack: &Path, offset: u64, length: u64, dest: &Path) -> std::io::Result<Digest> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(pack)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut out = HashingWriter::new(std::fs::File::create(dest)?);
    std::io::copy(&mut file.take(length), &mut out)?;
    out.flush()?;
    Ok(out.finish().1)
}

/// Unpacks `packed` into `dest`; returns the digest of what was written.
fn gunzip(packed: &Path, dest: &Path) -> std::io::Result<Digest> {
    let mut decoder = flate2::read::GzDecoder::new(std::fs::File::open(packed)?);
    let mut out = HashingWriter::new(std::fs::File::create(dest)?);
    std::io::copy(&mut decoder, &mut out)?;
    out.flush()?;
    Ok(out.finish().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(dir: &Path) -> Remote {
        let env = crate::settings::Environment::from_pairs([("HOME", dir.join("home"))]);
        let keychain = crate::auth::Keychain::new(&env).unwrap();
        let client = RegistryClient::new(keychain, crate::registry::ClientOptions::default()).unwrap();
        Remote::new(Arc::new(client), Repository::parse("127.0.0.1:1/gocache").unwrap())
    }

    #[tokio::test]
    async fn an_inline_output_is_checked_against_its_output_id() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, dest) = (remote(dir.path()), dir.path().join("out"));
        let data = bytes::Bytes::from_static(b"small archive");
        let good = RemoteEntry { output: Digest::of(&data), size: 13, stored: Stored::Inline(data.clone()) };
        remote.fetch(&good, &dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        let bad = RemoteEntry { stored: Stored::Inline(bytes::Bytes::from_static(b"other archive")), ..good };
        match remote.fetch(&bad, &dest).await {
            Err(FetchError::BadEntry { output, got }) => {
                assert_eq!((output, got), (Digest::of(&data), Digest::of(b"other archive")));
            }
            other => panic!("expected a bad entry, got {other:?}"),
        }
    }

    #[test]
    fn a_pack_fills_to_its_target_and_each_output_is_cut_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let remote = remote(dir.path());
        let outputs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1 << 20]).collect();
        let mut full = None;
        for (i, data) in outputs.iter().enumerate() {
            let sealed = remote.add_to_pack(&[i as u8; 32], Digest::of(data), data);
            assert_eq!(sealed.is_some(), i == 3, "full at 4 MiB");
            full = full.or(sealed);
        }
        let full = full.unwrap();
        assert_eq!(full.members.len(), 4);
        let rest = remote.take_pack().unwrap();
        assert_eq!((rest.members.len(), rest.members[0].2), (1, 0), "a new pack starts at 0");
        assert!(remote.take_pack().is_none());

        let path = dir.path().join("pack");
        std::fs::write(&path, &full.bytes).unwrap();
        let (_, output, offset) = &full.members[2];
        let out = dir.path().join("out");
        assert_eq!(&cut(&path, *offset, 1 << 20, &out).unwrap(), output);
        assert_eq!(std::fs::read(&out).unwrap(), outputs[2]);
        // Past the pack's end (a wrong offset): what is there, whose digest cannot match.
        assert_eq!(cut(&path, 4 << 20, 1, &out).unwrap(), Digest::of(b""));
    }

    #[tokio::test]
    async fn the_gzip_form_unpacks_to_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let (body, packed, back) = (dir.path().join("o"), dir.path().join("o.gz"), dir.path().join("back"));
        std::fs::write(&body, b"a Go archive, repeated ".repeat(100)).unwrap();
        let bytes = gzip(&body).await.unwrap();
        std::fs::write(&packed, &bytes).unwrap();
        assert_eq!(gzip(&body).await.unwrap(), bytes, "deterministic");
        assert_eq!(gunzip(&packed, &back).unwrap(), Digest::of(&std::fs::read(&body).unwrap()));
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&body).unwrap());
    }
}
