//! The registry tier's map from actions to outputs, in [`SHARDS`] manifests: the entry of an
//! action is in the shard named by the first hex digit of its ID, under the tag
//! `shard-v2-<digit>`. A shard is an OCI manifest (`artifactType` [`ARTIFACT_TYPE`], the empty
//! config) whose annotation [`ENTRIES_ANNOTATION`] holds one line per action (`entry.rs`) and
//! whose layers are the blobs those entries name, so the registry keeps them and its garbage
//! collection may remove the rest.
//!
//! A process reads every shard once, as Go starts (one that fails then is read at its first
//! lookup), so a whole build costs 16 lookups and a miss is answered from memory; it writes
//! each shard it added entries to once, when Go finishes, merged into what the registry then
//! holds. A shard keeps the entries written in the last [`MAX_AGE`] and, past [`MAX_BYTES`],
//! drops the oldest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::entry::{Record, RemoteEntry, Stored, parse_line, write_line};
use crate::digest::Digest;

pub const SHARDS: usize = 16;
pub const ARTIFACT_TYPE: &str = "application/vnd.kubectl-ko.gocache.v2";
pub const OUTPUT_MEDIA_TYPE: &str = "application/vnd.kubectl-ko.gocache.output.v1";
pub const GZIP_MEDIA_TYPE: &str = "application/vnd.kubectl-ko.gocache.output.v1+gzip";
pub const PACK_MEDIA_TYPE: &str = "application/vnd.kubectl-ko.gocache.pack.v1";
pub use crate::image::manifest::OCI_MANIFEST as MANIFEST_MEDIA_TYPE;
pub use crate::sign::bundle::OCI_EMPTY as EMPTY_MEDIA_TYPE;
pub const EMPTY_BLOB: &[u8] = b"{}";
pub const ENTRIES_ANNOTATION: &str = "dev.kubectl-ko.gocache.entries";
/// Entries older than this are dropped when their shard is written.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// A shard's manifest stays under this size (registries refuse manifests past 4 MiB).
pub const MAX_BYTES: usize = 2 << 20;
/// What one layer descriptor adds to a manifest, about.
const DESCRIPTOR_BYTES: usize = 200;

/// The shard that holds an action's entry.
pub fn index_of(action_id: &[u8]) -> usize {
    action_id.first().map_or(0, |b| usize::from(b >> 4))
}

/// The tag of a shard.
pub fn tag(index: usize) -> String {
    format!("shard-v2-{index:x}")
}

/// Some actions' entries, by action ID in hex.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    records: BTreeMap<String, Record>,
}

impl Shard {
    pub fn get(&self, action_id: &[u8]) -> Option<&RemoteEntry> {
        self.records.get(&hex::encode(action_id)).map(|r| &r.entry)
    }

    pub fn insert(&mut self, action_id: &[u8], record: Record) {
        self.records.insert(hex::encode(action_id), record);
    }

    /// True when every action of `other` has the same entry here (the same output, stored
    /// the same way).
    pub fn covers(&self, other: &Shard) -> bool {
        other.records.iter().all(|(action, r)| self.records.get(action).is_some_and(|m| m.entry == r.entry))
    }

    /// Adds `newer`'s entries, which replace those of the same actions.
    pub fn merge(&mut self, newer: &Shard) {
        self.records.extend(newer.records.iter().map(|(a, r)| (a.clone(), r.clone())));
    }

    /// The blobs the entries name.
    pub fn blobs(&self) -> BTreeSet<Digest> {
        self.records.values().filter_map(|r| r.entry.blob()).map(|(digest, _)| digest.clone()).collect()
    }

    /// Drops the entries that name one of `gone`.
    pub fn drop_blobs(&mut self, gone: &BTreeSet<Digest>) {
        self.records.retain(|_, r| r.entry.blob().is_none_or(|(digest, _)| !gone.contains(digest)));
    }

    /// Drops the entries older than [`MAX_AGE`] at `now`, then the oldest until the manifest
    /// fits in [`MAX_BYTES`].
    pub fn trim(&mut self, now: u64) {
        let oldest = now.saturating_sub(MAX_AGE.as_secs());
        self.records.retain(|_, r| r.time >= oldest);
        let cost = |action: &str, record: &Record| {
            let mut line = String::new();
            write_line(action, record, &mut line);
            line.len() + 1 + if record.entry.blob().is_some() { DESCRIPTOR_BYTES } else { 0 }
        };
        let mut total: usize = self.records.iter().map(|(a, r)| cost(a, r)).sum();
        if total <= MAX_BYTES - 4096 {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self.records.iter().map(|(a, r)| (r.time, a.clone())).collect();
        by_age.sort();
        for (_, action) in by_age {
            if total <= MAX_BYTES - 4096 {
                break;
            }
            if let Some(record) = self.records.remove(&action) {
                total -= cost(&action, &record);
            }
        }
    }

    /// The shard as its manifest.
    pub fn to_manifest(&self) -> bytes::Bytes {
        let mut lines = String::new();
        let mut blobs = BTreeMap::new();
        for (action, record) in &self.records {
            write_line(action, record, &mut lines);
            lines.push('\n');
            if let Some((digest, size)) = record.entry.blob() {
                let media_type = match record.entry.stored {
                    Stored::Packed { .. } => PACK_MEDIA_TYPE,
                    Stored::Gzip { .. } => GZIP_MEDIA_TYPE,
                    _ => OUTPUT_MEDIA_TYPE,
                };
                blobs.insert(digest.to_string(), descriptor(media_type, digest, size));
            }
        }
        let mut layers: Vec<Value> = blobs.into_values().collect();
        if layers.is_empty() {
            layers.push(empty_descriptor());
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": empty_descriptor(),
            "layers": layers,
            "annotations": { ENTRIES_ANNOTATION: lines },
        });
        bytes::Bytes::from(serde_json::to_vec(&manifest).expect("a manifest serialises"))
    }

    /// The shard a manifest holds; `None` when it is not one of ours. Lines that are not
    /// entries are skipped.
    pub fn parse(bytes: &[u8]) -> Option<Shard> {
        let manifest: Value = serde_json::from_slice(bytes).ok()?;
        if manifest.get("artifactType")?.as_str()? != ARTIFACT_TYPE {
            return None;
        }
        let lines = manifest.get("annotations")?.get(ENTRIES_ANNOTATION)?.as_str()?;
        Some(Shard { records: lines.lines().filter_map(parse_line).collect() })
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Value {
    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

fn empty_descriptor() -> Value {
    descriptor(EMPTY_MEDIA_TYPE, &Digest::of(EMPTY_BLOB), EMPTY_BLOB.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(output: &[u8], stored: Stored, time: u64) -> Record {
        Record { entry: RemoteEntry { output: Digest::of(output), size: output.len() as u64, stored }, time }
    }

    #[test]
    fn a_shard_round_trips_through_its_manifest_and_names_its_blobs() {
        let mut shard = Shard::default();
        shard.insert(&[0x10; 32], record(b"small", Stored::Inline(bytes::Bytes::from_static(b"small")), 5));
        shard.insert(&[0x11; 32], record(b"large", Stored::Blob, 6));
        shard.insert(&[0x12; 32], record(b"large", Stored::Blob, 7));
        shard.insert(&[0x13; 32], record(b"healed", Stored::Gzip { blob: Digest::of(b"gz"), size: 2 }, 8));
        shard.insert(&[0x14; 32], record(b"mid", Stored::Packed { pack: Digest::of(b"pk"), size: 9, offset: 3 }, 9));
        shard.insert(&[0x15; 32], record(b"mid2", Stored::Packed { pack: Digest::of(b"pk"), size: 9, offset: 6 }, 9));
        let manifest = shard.to_manifest();
        assert_eq!(Shard::parse(&manifest), Some(shard.clone()));
        let value: Value = serde_json::from_slice(&manifest).unwrap();
        let layers: Vec<&str> =
            value["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert_eq!(layers.len(), 3, "one layer per blob: {layers:?}");
        assert!(layers.contains(&Digest::of(b"pk").to_string().as_str()));
        assert!(layers.contains(&Digest::of(b"large").to_string().as_str()));
        assert!(layers.contains(&Digest::of(b"gz").to_string().as_str()));
        assert_eq!(value["config"]["digest"], Digest::of(b"{}").to_string());
        let empty: Value = serde_json::from_slice(&Shard::default().to_manifest()).unwrap();
        assert_eq!(empty["layers"][0]["mediaType"], EMPTY_MEDIA_TYPE, "a layer even when no entry names a blob");
        assert_eq!(Shard::parse(br#"{"schemaVersion":2,"layers":[]}"#), None, "not ours");
    }

    #[test]
    fn a_merge_keeps_both_sides_and_the_newer_entry_of_an_action() {
        let mut theirs = Shard::default();
        theirs.insert(&[1; 32], record(b"a", Stored::Blob, 1));
        theirs.insert(&[2; 32], record(b"b", Stored::Blob, 1));
        let mut ours = Shard::default();
        ours.insert(&[2; 32], record(b"b", Stored::Gzip { blob: Digest::of(b"bz"), size: 2 }, 2));
        ours.insert(&[3; 32], record(b"c", Stored::Blob, 2));
        assert!(!theirs.covers(&ours));
        let mut healed = theirs.clone();
        healed.insert(&[3; 32], record(b"c", Stored::Gzip { blob: Digest::of(b"cz"), size: 2 }, 3));
        assert!(!healed.covers(&ours), "the same output stored another way is not covered");
        theirs.merge(&ours);
        assert!(theirs.covers(&ours));
        assert_eq!(theirs.records.len(), 3);
        assert!(matches!(theirs.get(&[2; 32]).unwrap().stored, Stored::Gzip { .. }));
    }

    #[test]
    fn entries_that_name_a_gone_blob_are_dropped() {
        let mut shard = Shard::default();
        shard.insert(&[1; 32], record(b"a", Stored::Blob, 1));
        shard.insert(&[2; 32], record(b"b", Stored::Packed { pack: Digest::of(b"pk"), size: 9, offset: 0 }, 1));
        shard.insert(&[3; 32], record(b"c", Stored::Packed { pack: Digest::of(b"pk"), size: 9, offset: 4 }, 1));
        shard.insert(&[4; 32], record(b"d", Stored::Inline(bytes::Bytes::from_static(b"d")), 1));
        assert_eq!(shard.blobs(), BTreeSet::from([Digest::of(b"a"), Digest::of(b"pk")]));
        shard.drop_blobs(&BTreeSet::from([Digest::of(b"pk")]));
        assert_eq!(shard.records.len(), 2);
        assert!(shard.get(&[1; 32]).is_some() && shard.get(&[4; 32]).is_some());
    }

    #[test]
    fn trimming_drops_old_entries_then_the_oldest_past_the_size_bound() {
        let now = 100 * 24 * 3600;
        let mut shard = Shard::default();
        shard.insert(&[1; 32], record(b"old", Stored::Blob, now - MAX_AGE.as_secs() - 1));
        shard.insert(&[2; 32], record(b"recent", Stored::Blob, now - 10));
        shard.trim(now);
        assert_eq!((shard.get(&[1; 32]), shard.get(&[2; 32]).is_some()), (None, true));
        // Inline outputs of 16 KiB (about 22 KB of base64 each) past the bound.
        let data = bytes::Bytes::from(vec![7u8; 16 << 10]);
        let id = |i: u8| {
            let mut id = [9u8; 32];
            id[0] = i;
            id
        };
        for i in 0..200u8 {
            shard.insert(&id(i), record(&data, Stored::Inline(data.clone()), now - 1000 + u64::from(i)));
        }
        shard.trim(now);
        let kept = shard.to_manifest().len();
        assert!(kept <= MAX_BYTES && kept > MAX_BYTES / 2, "{kept}");
        assert_eq!(shard.get(&id(0)), None, "the oldest went first");
        assert!(shard.get(&id(199)).is_some());
    }

    #[test]
    fn the_shard_is_the_first_hex_digit() {
        assert_eq!(index_of(&[0x0f; 32]), 0);
        assert_eq!(index_of(&[0xa0; 32]), 10);
        assert_eq!(tag(15), "shard-v2-f");
        crate::reference::validate_tag(&tag(10)).unwrap();
    }
}
