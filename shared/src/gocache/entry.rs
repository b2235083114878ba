//! What the registry tier stores for one action: a tiny OCI manifest (the tag
//! `a-<action ID in hex>`, [`ARTIFACT_TYPE`], the empty config) that names the output in one of
//! three forms:
//!
//! - **inline**: an output of at most [`INLINE_MAX`] bytes travels in the manifest itself
//!   (base64 in the annotation [`DATA_ANNOTATION`]; the one layer is the empty blob). Most of
//!   Go's outputs are that small, so most puts are one request and most hits one `GET`;
//! - **blob**: the one layer is the output, a blob whose digest is Go's output ID;
//! - **gzip**: the one layer is the output gzipped, a blob of another digest. This form is
//!   written only for an output whose own blob was found corrupt: the registry cannot replace
//!   a blob under its digest, so the entry names other bytes.
//!
//! Every form carries the output ID and size in annotations, and every form is checked against
//! the output ID when it is read (`remote.rs`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::digest::Digest;

pub const ARTIFACT_TYPE: &str = "application/vnd.kubectl-ko.gocache.v1";
pub const OUTPUT_MEDIA_TYPE: &str = "application/vnd.kubectl-ko.gocache.output.v1";
pub const GZIP_MEDIA_TYPE: &str = "application/vnd.kubectl-ko.gocache.output.v1+gzip";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BLOB: &[u8] = b"{}";
pub const OUTPUT_ANNOTATION: &str = "dev.kubectl-ko.gocache.output";
pub const SIZE_ANNOTATION: &str = "dev.kubectl-ko.gocache.size";
pub const DATA_ANNOTATION: &str = "dev.kubectl-ko.gocache.data";
/// Outputs up to this size are stored inline, in their action's manifest.
pub const INLINE_MAX: usize = 64 << 10;

/// Where an entry's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Inline(bytes::Bytes),
    Blob,
    Gzip { blob: Digest, size: u64 },
}

/// What the registry maps an action to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    pub output: Digest,
    pub size: u64,
    pub stored: Stored,
}

/// The tag that holds an action's entry.
pub fn action_tag(action_id: &[u8]) -> String {
    format!("a-{}", hex::encode(action_id))
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Value {
    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

fn empty_descriptor() -> Value {
    descriptor(EMPTY_MEDIA_TYPE, &Digest::of(EMPTY_BLOB), EMPTY_BLOB.len() as u64)
}

/// The manifest that maps an action to its output.
pub fn entry_manifest(entry: &RemoteEntry) -> bytes::Bytes {
    let mut annotations =
        json!({ OUTPUT_ANNOTATION: entry.output.to_string(), SIZE_ANNOTATION: entry.size.to_string() });
    let layer = match &entry.stored {
        Stored::Inline(data) => {
            annotations[DATA_ANNOTATION] = Value::String(STANDARD.encode(data));
            empty_descriptor()
        }
        Stored::Blob => descriptor(OUTPUT_MEDIA_TYPE, &entry.output, entry.size),
        Stored::Gzip { blob, size } => descriptor(GZIP_MEDIA_TYPE, blob, *size),
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": empty_descriptor(),
        "layers": [layer],
        "annotations": annotations,
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
    let annotations = manifest.get("annotations");
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);
    let layer_digest = Digest::parse(layer.get("digest")?.as_str()?).ok()?;
    let layer_size = layer.get("size")?.as_u64()?;
    let (output, size) = match (annotation(OUTPUT_ANNOTATION), annotation(SIZE_ANNOTATION)) {
        (Some(output), Some(size)) => (Digest::parse(output).ok()?, size.parse().ok()?),
        _ => (layer_digest.clone(), layer_size),
    };
    let stored = match layer.get("mediaType")?.as_str()? {
        OUTPUT_MEDIA_TYPE => Stored::Blob,
        GZIP_MEDIA_TYPE => Stored::Gzip { blob: layer_digest, size: layer_size },
        _ => Stored::Inline(STANDARD.decode(annotation(DATA_ANNOTATION)?).ok()?.into()),
    };
    Some(RemoteEntry { output, size, stored })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips_through_its_manifest() {
        let output = Digest::of(b"archive");
        let forms = [
            Stored::Inline(bytes::Bytes::from_static(b"archive")),
            Stored::Blob,
            Stored::Gzip { blob: Digest::of(b"gzipped"), size: 30 },
        ];
        for stored in forms {
            let entry = RemoteEntry { output: output.clone(), size: 7, stored };
            assert_eq!(parse_entry(&entry_manifest(&entry)), Some(entry));
        }
        let blob = RemoteEntry { output: output.clone(), size: 7, stored: Stored::Blob };
        let value: Value = serde_json::from_slice(&entry_manifest(&blob)).unwrap();
        assert_eq!(value["config"]["digest"], Digest::of(b"{}").to_string());
        assert_eq!(value["layers"][0]["digest"], output.to_string());
        assert_eq!(parse_entry(br#"{"schemaVersion":2,"layers":[]}"#), None, "not ours");
    }

    #[test]
    fn an_entry_of_the_first_format_is_still_read() {
        // Before inline entries: no annotations, the output as the one layer.
        let output = Digest::of(b"archive");
        let old = json!({
            "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": ARTIFACT_TYPE,
            "config": empty_descriptor(), "layers": [descriptor(OUTPUT_MEDIA_TYPE, &output, 7)],
        });
        let entry = parse_entry(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(entry, RemoteEntry { output, size: 7, stored: Stored::Blob });
    }

    #[test]
    fn the_tag_is_the_action_id_in_hex() {
        let tag = action_tag(&[0xab; 32]);
        assert_eq!(tag.len(), 66);
        assert!(tag.starts_with("a-abab"));
        crate::reference::validate_tag(&tag).unwrap();
    }
}
