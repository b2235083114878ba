//! Putting ko's layers on a base: the config changes (entrypoint, `PATH`, `KO_DATA_PATH`,
//! labels, user, creation time, history) and the manifest (media types follow the base;
//! base name and digest annotations), serialised once so the digest is of the pushed bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::kodata::KO_DATA_PATH;
use super::layer::LayerRecord;
use super::target::ImageOs;
use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::image::BaseImage;
use crate::image::manifest::{self, Descriptor, Manifest};
use crate::image::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, Blob, BlobSource, Image};

/// A layer added on top of the base, with its history entry.
pub struct AddedLayer {
    pub record: LayerRecord,
    pub created_by: String,
    pub comment: String,
    pub created: String,
}

/// Image settings from flags and `.ko.yaml`.
#[derive(Clone, Debug, Default)]
pub struct ImageSettings {
    pub entrypoint: Vec<String>,
    /// Set in the config's `Env` after ko's own entries (replacing one of the same name).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub user: Option<String>,
    /// `SOURCE_DATE_EPOCH` as RFC 3339; otherwise the base's `created` is kept.
    pub created: Option<String>,
}

fn object<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let slot = value.as_object_mut().expect("configs are objects").entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

fn array<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

/// Applies ko's changes to a copy of the base config.
fn config_for(base: &BaseImage, layers: &[AddedLayer], settings: &ImageSettings) -> Value {
    let mut config = base.config.clone();
    if !config.is_object() {
        config = json!({});
    }
    {
        let c = object(&mut config, "config");
        c.insert("Entrypoint".into(), json!(settings.entrypoint));
        c.remove("Cmd");
        let os = ImageOs::of(&base.platform);
        let app_dir = os.runtime_path(&format!("/{}", super::app::APP_DIR));
        let env = array(c, "Env");
        // Windows names variables case-insensitively (`Path` is `PATH` there).
        let is_path = |e: &Value| {
            e.as_str().and_then(|s| s.split_once('=')).is_some_and(|(k, _)| match os {
                ImageOs::Linux => k == "PATH",
                ImageOs::Windows => k.eq_ignore_ascii_case("PATH"),
            })
        };
        match env.iter().position(is_path) {
            Some(i) => {
                let old = env[i].as_str().unwrap_or("PATH=").to_string();
                env[i] = json!(format!("{old}{}{app_dir}", os.path_list_separator()));
            }
            None => env.push(json!(format!("PATH={app_dir}"))),
        }
        env.push(json!(format!("KO_DATA_PATH={}", os.runtime_path(KO_DATA_PATH))));
        for (k, v) in &settings.env {
            let entry = json!(format!("{k}={v}"));
            let prefix = format!("{k}=");
            match env.iter().position(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix))) {
                Some(i) => env[i] = entry,
                None => env.push(entry),
            }
        }
        if let Some(dir) = &settings.working_dir {
            c.insert("WorkingDir".into(), json!(dir));
        }
        if !settings.labels.is_empty() {
            let labels = c.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            let labels = labels.as_object_mut().expect("just made an object");
            for (k, v) in &settings.labels {
                labels.insert(k.clone(), json!(v));
            }
        }
        if let Some(user) = &settings.user {
            c.insert("User".into(), json!(user));
        }
    }
    let top = config.as_object_mut().expect("configs are objects");
    top.insert("author".into(), json!("kubectl-ko"));
    match &settings.created {
        Some(created) => {
            top.insert("created".into(), json!(created));
        }
        // The base's time stays; a base without one gets Go's zero time, which ko writes
        // (its config type always has the field).
        None if top.get("created").is_none_or(|c| !c.is_string()) => {
            top.insert("created".into(), json!(crate::time::ZERO_TIME));
        }
        None => {}
    }
    {
        let rootfs = object(&mut config, "rootfs");
        rootfs.insert("type".into(), json!("layers"));
        let ids = array(rootfs, "diff_ids");
        for l in layers {
            ids.push(json!(l.record.diff_id.as_str()));
        }
    }
    let top = config.as_object_mut().expect("configs are objects");
    let history = array(top, "history");
    for l in layers {
        history.push(json!({
            "created": l.created,
            "created_by": l.created_by,
            "author": "kubectl-ko",
            "comment": l.comment,
        }));
    }
    config
}

/// Builds the image for one platform and stores its config blob in the cache.
pub fn assemble(
    cache: &Cache,
    base: &BaseImage,
    layers: &[AddedLayer],
    settings: &ImageSettings,
) -> Result<Image, CacheError> {
    let family = base.family;
    let config_bytes = Bytes::from(serde_json::to_vec(&config_for(base, layers, settings)).expect("json"));
    let config_digest = cache.put_blob_bytes(&config_bytes)?;
    // The base's config descriptor with the new config's digest and size: its media type
    // and any annotations stay, as in ko.
    let config_desc =
        Descriptor { digest: config_digest, size: config_bytes.len() as u64, ..base.manifest.config.clone() };

    let mut layer_blobs = base.layers.clone();
    for l in layers {
        layer_blobs.push(Blob {
            descriptor: Descriptor::new(family.layer_gzip(), l.record.digest.clone(), l.record.size),
            source: BlobSource::Cache,
        });
    }
    let mut annotations = base.manifest.annotations.clone().unwrap_or_default();
    annotations.extend(settings.annotations.clone());
    annotations.insert(ANNOTATION_BASE_NAME.into(), crate::image::base_name(&base.name));
    annotations.insert(ANNOTATION_BASE_DIGEST.into(), base.digest.to_string());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(family.manifest().to_string()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: layer_blobs.iter().map(|b| b.descriptor.clone()).collect(),
        subject: None,
        annotations: Some(annotations),
    };
    let manifest_bytes = Bytes::from(manifest::to_bytes(&manifest));
    Ok(Image {
        digest: Digest::of(&manifest_bytes),
        manifest_bytes,
        media_type: family.manifest().to_string(),
        config_bytes,
        config: Blob { descriptor: config_desc, source: BlobSource::Cache },
        layers: layer_blobs,
        platform: base.platform.clone(),
        sbom: None,
        provenance: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::MediaFamily;
    use crate::platform::Platform;

    fn base(config: Value) -> BaseImage {
        let config_desc = Descriptor::new(manifest::OCI_CONFIG, Digest::of(b"c"), 1);
        BaseImage {
            name: "r.io/base:v1".into(),
            digest: Digest::of(b"base"),
            family: MediaFamily::Oci,
            manifest: Manifest {
                schema_version: 2,
                media_type: Some(manifest::OCI_MANIFEST.into()),
                artifact_type: None,
                config: config_desc,
                layers: vec![],
                subject: None,
                annotations: None,
            },
            config,
            layers: vec![],
            platform: Platform::parse("linux/amd64").unwrap(),
            descriptor: None,
        }
    }

    #[test]
    fn image_settings_reach_the_config() {
        let base = base(json!({"config": {"Env": ["PATH=/bin", "MODE=base"], "User": "65532", "Labels": {"a": "1"}}}));
        let settings = ImageSettings {
            entrypoint: vec!["/ko-app/app".into()],
            env: vec![("MODE".into(), "image".into()), ("NEW".into(), "x".into())],
            working_dir: Some("/srv".into()),
            labels: [("b".to_string(), "2".to_string())].into(),
            user: Some("1000".into()),
            ..Default::default()
        };
        let config = config_for(&base, &[], &settings);
        let c = &config["config"];
        assert_eq!(c["Env"], json!(["PATH=/bin:/ko-app", "MODE=image", "KO_DATA_PATH=/var/run/ko", "NEW=x"]));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000");
        assert_eq!(c["Labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(config["created"], "0001-01-01T00:00:00Z", "a base without a time gets Go's zero, as in ko");

        let dated = self::base(json!({"created": "2024-05-01T10:00:00Z", "config": {}}));
        assert_eq!(config_for(&dated, &[], &ImageSettings::default())["created"], "2024-05-01T10:00:00Z");
    }

    #[test]
    fn windows_images_get_drive_c_paths_and_semicolons() {
        let mut windows = base(json!({"config": {"Env": [r"Path=C:\Windows\system32;C:\Windows"]}}));
        windows.platform = Platform::parse("windows/amd64:10.0.20348").unwrap();
        let config = config_for(&windows, &[], &ImageSettings::default());
        assert_eq!(
            config["config"]["Env"],
            json!([r"Path=C:\Windows\system32;C:\Windows;C:\ko-app", r"KO_DATA_PATH=C:\var\run\ko"])
        );
        let bare = base(json!({}));
        let mut bare_windows = bare.clone();
        bare_windows.platform = windows.platform.clone();
        let config = config_for(&bare_windows, &[], &ImageSettings::default());
        assert_eq!(config["config"]["Env"], json!([r"PATH=C:\ko-app", r"KO_DATA_PATH=C:\var\run\ko"]));
        // On Linux a `Path` is another variable.
        let linux = base(json!({"config": {"Env": ["Path=/x"]}}));
        let config = config_for(&linux, &[], &ImageSettings::default());
        assert_eq!(config["config"]["Env"], json!(["Path=/x", "PATH=/ko-app", "KO_DATA_PATH=/var/run/ko"]));
    }
}
