//! Reading what is inside a pushed image: its layers as an OCI layout (copied with skopeo)
//! and the app binary's tar entry, with its PAX records, read with the `tar` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// An image copied from the test registry into an OCI layout (the host's platform of an index).
pub struct Layout {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Layout {
    pub fn fetch(reference: &str) -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &skopeo_name(reference),
            &format!("oci:{}:img", root.display()),
        ])
        .assert_success();
        Layout { _dir: dir, root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
    }

    fn json(&self, digest: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.blob(digest)).unwrap()).unwrap()
    }

    pub fn manifest(&self) -> Value {
        let index = serde_json::from_slice::<Value>(&std::fs::read(self.root.join("index.json")).unwrap()).unwrap();
        self.json(index["manifests"][0]["digest"].as_str().unwrap())
    }
}

/// A file entry of a layer: its bytes and its PAX extended header records.
pub struct Entry {
    pub data: Vec<u8>,
    pub pax: BTreeMap<String, Vec<u8>>,
}

/// The entry at `path` (without a leading `/`) in a gzipped layer.
pub fn layer_entry(layer: &Path, path: &str) -> Option<Entry> {
    use std::io::Read;
    let file = std::fs::File::open(layer).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().trim_start_matches('/').to_string();
        if name != path {
            continue;
        }
        let mut pax = BTreeMap::new();
        if let Some(records) = entry.pax_extensions().unwrap() {
            for record in records {
                let record = record.unwrap();
                pax.insert(record.key().unwrap().to_string(), record.value_bytes().to_vec());
            }
        }
        let mut data = vec![];
        entry.read_to_end(&mut data).unwrap();
        return Some(Entry { data, pax });
    }
    None
}

/// The app binary `/ko-app/<name>` from the image's last layer.
pub fn app_binary(reference: &str, name: &str) -> Entry {
    let layout = Layout::fetch(reference);
    let manifest = layout.manifest();
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    layer_entry(&layout.blob(&last), &format!("ko-app/{name}"))
        .unwrap_or_else(|| panic!("ko-app/{name} is not in the last layer of {reference}"))
}
