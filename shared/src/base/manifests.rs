//! Base manifests on disk: every manifest fetched is kept under its digest, and each tag
//! remembers the digest it last resolved to. A digest reference is then never fetched twice,
//! and when the registry cannot be reached, a tag resolved before is used from the cache with
//! a warning that says how old it is, so rebuilds work offline (and past a registry that
//! stopped answering).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::cache::Cache;
use crate::digest::Digest;
use crate::image::manifest::sniff_media_type;
use crate::output;
use crate::registry::{FetchedManifest, Reference, RegistryClient, RegistryError};

#[derive(Serialize, Deserialize)]
struct TagRecord {
    reference: String,
    digest: Digest,
    media_type: String,
    resolved_at: i64,
}

fn tag_key(reference: &Reference) -> String {
    hex::encode(&sha2::Sha256::digest(reference.to_string().as_bytes())[..16])
}

fn cached(cache: &Cache, digest: &Digest, media_type: Option<String>) -> Option<FetchedManifest> {
    let bytes = std::fs::read(cache.blob_path(digest)).ok()?;
    if &Digest::of(&bytes) != digest {
        return None;
    }
    let media_type = media_type.or_else(|| sniff_media_type(&bytes, None))?;
    Some(FetchedManifest { bytes: Bytes::from(bytes), media_type, digest: digest.clone() })
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} seconds"),
        s if s < 7200 => format!("{} minutes", s / 60),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Why manifest bytes (with the digest they have) are not an image manifest or index.
pub fn what_is_wrong(digest: &Digest, media_type: &str, bytes: &[u8]) -> String {
    let problem = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) if bytes.is_empty() => format!("its manifest is empty ({e})"),
        Err(e) => format!("its manifest is not JSON ({e})"),
        Ok(serde_json::Value::Object(_)) if media_type.is_empty() => "its manifest has no mediaType".to_string(),
        Ok(serde_json::Value::Object(_)) => format!(
            "its manifest has the media type {media_type:?}, which is not an OCI or Docker schema 2 image manifest or index"
        ),
        Ok(_) => "its manifest is JSON but not an object".to_string(),
    };
    format!("{problem} (manifest {digest}); check that the base names a container image or index")
}

/// Fetches a base manifest through the on-disk cache.
pub async fn fetch(
    client: &RegistryClient,
    cache: &Cache,
    reference: &Reference,
) -> Result<FetchedManifest, RegistryError> {
    if let Some(digest) = &reference.digest
        && let Some(found) = cached(cache, digest, None)
    {
        return Ok(found);
    }
    match client.manifest(reference).await {
        Ok(fetched) => {
            // The cache is an optimisation: failing to write it must not fail the build.
            let _ = cache.put_blob_bytes(&fetched.bytes);
            if reference.digest.is_none() {
                let record = TagRecord {
                    reference: reference.to_string(),
                    digest: fetched.digest.clone(),
                    media_type: fetched.media_type.clone(),
                    resolved_at: crate::time::now_unix(),
                };
                let _ = cache.write_record("bases", &tag_key(reference), &record);
            }
            Ok(fetched)
        }
        Err(error @ (RegistryError::Unreachable { .. } | RegistryError::Transfer { stalled: true, .. })) => {
            let record: Option<TagRecord> = cache.read_record("bases", &tag_key(reference));
            let Some(record) = record else { return Err(error) };
            let Some(found) = cached(cache, &record.digest, Some(record.media_type)) else { return Err(error) };
            let state =
                if matches!(error, RegistryError::Unreachable { .. }) { "is unreachable" } else { "stopped answering" };
            output::warn(format!(
                "{} {state}; using {} as resolved {} ago ({})",
                reference.repository.registry,
                record.reference,
                age(crate::time::now_unix() - record.resolved_at),
                record.digest
            ));
            Ok(found)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_manifest_says_what_is_wrong() {
        let d = Digest::of(b"x");
        assert!(what_is_wrong(&d, "", b"<html>").starts_with("its manifest is not JSON"));
        assert!(what_is_wrong(&d, "", b"").starts_with("its manifest is empty"));
        assert!(what_is_wrong(&d, "", b"[1]").starts_with("its manifest is JSON but not an object"));
        let odd = what_is_wrong(&d, "text/plain", b"{}");
        assert!(odd.contains("\"text/plain\"") && odd.contains(d.as_str()), "{odd}");
    }
}
