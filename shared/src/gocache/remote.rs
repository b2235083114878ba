//! The registry tier of the Go build cache, in one repository (`KO_GOCACHE_REPO`).
//!
//! - An output is a blob addressed by its sha256, which is Go's output ID. It is uploaded only
//!   after a `HEAD` says the repository lacks it, so a blob any runner pushed is never pushed
//!   again, and every download is checked against its digest.
//! - An action is a tiny OCI manifest under the tag `a-<action ID in hex>`: its one layer is
//!   the output's descriptor (digest and size), its config the empty descriptor, its
//!   `artifactType` [`ARTIFACT_TYPE`]. A lookup is one `GET` of that tag, so a miss costs one
//!   round trip and nothing is ever listed; the registry keeps the blob while the tag lives.
//!
//! The tier is best-effort: any failure other than a miss or one corrupt entry turns it off
//! for the rest of the process with one warning (see `mod.rs`).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::digest::Digest;
use crate::registry::{BlobBody, Reference, RegistryClient, RegistryError, Repository};

pub const ARTIFACT_TYPE: &str = "application/vnd.kubectl-ko.gocache.v1";
pub const OUTPUT_MEDIA_TYPE: &str = "application/vnd.kubectl-ko.gocache.output.v1";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";

/// What the registry maps an action to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    pub output: Digest,
    pub size: u64,
}

pub struct Remote {
    client: Arc<RegistryClient>,
    repo: Repository,
    /// The empty config blob, pushed once per process.
    config_pushed: OnceCell<()>,
}

/// The tag that holds an action's entry.
pub fn action_tag(action_id: &[u8]) -> String {
    format!("a-{}", hex::encode(action_id))
}

/// The manifest that maps an action to its output.
pub fn entry_manifest(entry: &RemoteEntry) -> bytes::Bytes {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": Digest::of(EMPTY_CONFIG).to_string(), "size": EMPTY_CONFIG.len() },
        "layers": [{ "mediaType": OUTPUT_MEDIA_TYPE, "digest": entry.output.to_string(), "size": entry.size }],
    });
    bytes::Bytes::from(serde_json::to_vec(&manifest).expect("a manifest serialises"))
}

/// The entry a manifest holds, or `None` when it is not one of ours.
pub fn parse_entry(bytes: &[u8]) -> Option<RemoteEntry> {
    let manifest: Value = serde_json::from_slice(bytes).ok()?;
    if manifest.get("artifactType")?.as_str()? != ARTIFACT_TYPE {
        return None;
    }
    let layer = manifest.get("layers")?.as_array()?.first()?;
    let output = Digest::parse(layer.get("digest")?.as_str()?).ok()?;
    Some(RemoteEntry { output, size: layer.get("size")?.as_u64()? })
}

impl Remote {
    pub fn new(client: Arc<RegistryClient>, repo: Repository) -> Remote {
        Remote { client, repo, config_pushed: OnceCell::new() }
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The entry of an action: `None` when the registry has none (one round trip).
    pub async fn lookup(&self, action_id: &[u8]) -> Result<Option<RemoteEntry>, RegistryError> {
        let reference = Reference { repository: self.repo.clone(), tag: Some(action_tag(action_id)), digest: None };
        match self.client.manifest(&reference).await {
            Ok(fetched) => Ok(parse_entry(&fetched.bytes)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Downloads an output into `dest`, its digest checked as it streams.
    pub async fn fetch(&self, entry: &RemoteEntry, dest: &Path) -> Result<(), RegistryError> {
        self.client.fetch_blob(&self.repo, &entry.output, dest).await
    }

    /// Pushes an output (unless the repository has it) and then the action's entry.
    pub async fn publish(&self, action_id: &[u8], entry: &RemoteEntry, body: &Path) -> Result<(), RegistryError> {
        let config = Digest::of(EMPTY_CONFIG);
        self.config_pushed.get_or_try_init(|| self.push_blob(&config, EMPTY_CONFIG.len() as u64, None)).await?;
        self.push_blob(&entry.output, entry.size, Some(body)).await?;
        let manifest = entry_manifest(entry);
        self.client.put_manifest(&self.repo, &action_tag(action_id), MANIFEST_MEDIA_TYPE, &manifest).await
    }

    async fn push_blob(&self, digest: &Digest, size: u64, file: Option<&Path>) -> Result<(), RegistryError> {
        if self.client.blob_exists(&self.repo, digest).await? {
            return Ok(());
        }
        let body = match file {
            Some(path) => BlobBody::File(path),
            None => BlobBody::Bytes(bytes::Bytes::from_static(EMPTY_CONFIG)),
        };
        self.client.upload_blob(&self.repo, digest, size, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_through_its_manifest() {
        let entry = RemoteEntry { output: Digest::of(b"archive"), size: 7 };
        let manifest = entry_manifest(&entry);
        assert_eq!(parse_entry(&manifest), Some(entry));
        let value: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(value["config"]["digest"], Digest::of(b"{}").to_string());
        assert_eq!(parse_entry(br#"{"schemaVersion":2,"layers":[]}"#), None, "not ours");
    }

    #[test]
    fn the_tag_is_the_action_id_in_hex() {
        let tag = action_tag(&[0xab; 32]);
        assert_eq!(tag.len(), 66);
        assert!(tag.starts_with("a-abab"));
        crate::reference::validate_tag(&tag).unwrap();
    }
}
