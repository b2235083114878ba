//! The image settings of `.ko.yaml` (beyond ko: `image:` at the top level and in each
//! `builds[]` entry): env, working directory, labels, annotations and user, as written and
//! as checked, and the checks the matching flags share (`--image-user`, `--image-label`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{OneOrMany, OneOrManyVisitor};

/// `env` for the image as a list of `K=V` (or one string) or as a map (whose values may be
/// written as numbers: `PORT: 8080`).
#[derive(Clone, Debug)]
enum RawEnv {
    Map(BTreeMap<String, String>),
    List(OneOrMany),
}

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawEnvVisitor)
    }
}

struct RawEnvVisitor;

impl<'de> serde::de::Visitor<'de> for RawEnvVisitor {
    type Value = RawEnv;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map, a list of KEY=VALUE strings, or a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawEnv, E> {
        OneOrManyVisitor.visit_str(v).map(RawEnv::List)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawEnv, A::Error> {
        OneOrManyVisitor.visit_seq(seq).map(RawEnv::List)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawEnv, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, String>()? {
            entries.insert(key, value);
        }
        Ok(RawEnv::Map(entries))
    }
}

/// Beyond ko: the `image:` block, top level or per build. Not `builds[].env`, which ko
/// defines as the environment of `go build`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawImage {
    env: Option<RawEnv>,
    #[serde(alias = "workingdir")]
    working_dir: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    user: Option<String>,
}

/// Image settings from `.ko.yaml` (`image:` at the top level or in a `builds[]` entry).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageConfig {
    /// Environment variables set in the image's config, in order.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub user: Option<String>,
}

impl ImageConfig {
    /// `self` with `over`'s settings on top: maps merge by key, single values are replaced.
    pub fn overlaid(&self, over: &ImageConfig) -> ImageConfig {
        let mut merged = self.clone();
        for (k, v) in &over.env {
            match merged.env.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => merged.env.push((k.clone(), v.clone())),
            }
        }
        merged.labels.extend(over.labels.clone());
        merged.annotations.extend(over.annotations.clone());
        if over.working_dir.is_some() {
            merged.working_dir = over.working_dir.clone();
        }
        if over.user.is_some() {
            merged.user = over.user.clone();
        }
        merged
    }
}

pub(super) fn image_config(raw: Option<RawImage>, place: &str) -> Result<ImageConfig, String> {
    let Some(raw) = raw else { return Ok(ImageConfig::default()) };
    let env = match raw.env {
        None => vec![],
        Some(RawEnv::Map(map)) => map.into_iter().collect(),
        Some(RawEnv::List(list)) => list
            .into_vec(false)
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(format!("{place}.env: {entry:?} is not KEY=VALUE")),
            })
            .collect::<Result<_, _>>()?,
    };
    for (what, map) in [("labels", &raw.labels), ("annotations", &raw.annotations)] {
        for key in map.keys() {
            check_metadata_key(key).map_err(|detail| format!("{place}.{what}: {key:?}: {detail}"))?;
        }
    }
    let user = raw.user.filter(|u| !u.is_empty());
    if let Some(user) = &user {
        check_image_user(user).map_err(|detail| format!("{place}.user: {user:?}: {detail}"))?;
    }
    Ok(ImageConfig {
        env,
        working_dir: raw.working_dir.filter(|w| !w.is_empty()),
        labels: raw.labels,
        annotations: raw.annotations,
        user,
    })
}

/// Checks an image user (`--image-user`, `image.user`): a name or id, optionally `:group`, as
/// the OCI image spec has it (`user`, `uid`, `user:group`, `uid:gid`, ...). Control characters
/// (a newline from a script) are never part of one.
pub fn check_image_user(user: &str) -> Result<(), String> {
    if user.chars().any(char::is_control) {
        return Err("holds a control character (a newline?); use user, uid, user:group or uid:gid".into());
    }
    let mut parts = user.split(':');
    let (name, group, extra) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    if extra.is_some() || name.is_empty() || group.is_some_and(str::is_empty) {
        return Err("use user, uid, user:group or uid:gid".into());
    }
    Ok(())
}

/// Checks a label or annotation key: not empty, no control characters.
pub fn check_metadata_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty; use key=value".into());
    }
    if key.chars().any(char::is_control) {
        return Err("the key holds a control character; use printable keys such as org.example.team".into());
    }
    Ok(())
}
