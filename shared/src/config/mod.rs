//! `.ko.yaml` (or `KO_CONFIG_PATH`) and the `KO_*` environment variables that override it.
//! Parsing only: resolving `builds[]` entries to import paths is `gobuild`'s job. Which file
//! is read is `discovery`'s; unknown keys and wrong types are worded by `diagnostics`.

mod diagnostics;
mod discovery;
mod image;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::image::caps::FileCaps;
use crate::output;
use crate::settings::Environment;

pub use image::{ImageConfig, check_image_user, check_metadata_key};
use image::{RawImage, image_config};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("KO_CONFIG_PATH={path}: {detail}; point it at a .ko.yaml file or a directory holding one")]
    Missing { path: PathBuf, detail: String },
    #[error("reading config file {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("config file {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("config file {path}: kubectl-ko reads YAML and JSON, not {format}; write it as .ko.yaml")]
    Format { path: PathBuf, format: String },
    #[error("{var}={value:?}: {detail}")]
    Env { var: &'static str, value: String, detail: String },
}

/// A string or a list of strings, as ko accepts for most list fields. Scalars that YAML
/// reads as numbers or booleans (`flags: [-p, 4]`) are taken as the text they are written as.
#[derive(Clone, Debug)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

pub(super) struct OneOrManyVisitor;

impl<'de> serde::de::Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of strings or a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(OneOrMany::Many(items))
    }
}

impl OneOrMany {
    /// `split`: whether a single string is split on whitespace (`flags: -v -v`).
    pub(super) fn into_vec(self, split: bool) -> Vec<String> {
        match self {
            OneOrMany::One(s) if split => s.split_whitespace().map(str::to_string).collect(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `builds:` as a list of builds, or as one build (a map), which ko reads as a list of one.
/// Read straight from the document (not buffered), so scalars keep how they are written.
fn one_or_more_builds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<RawBuild>>, D::Error> {
    struct Builds;
    impl<'de> serde::de::Visitor<'de> for Builds {
        type Value = Option<Vec<RawBuild>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of builds")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut builds = Vec::new();
            while let Some(build) = seq.next_element::<RawBuild>()? {
                builds.push(build);
            }
            Ok(Some(builds))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            RawBuild::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|b| Some(vec![b]))
        }
    }
    d.deserialize_any(Builds)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(alias = "defaultbaseimage")]
    default_base_image: Option<String>,
    #[serde(alias = "baseimageoverrides")]
    base_image_overrides: Option<BTreeMap<String, String>>,
    #[serde(alias = "defaultplatforms")]
    default_platforms: Option<OneOrMany>,
    #[serde(alias = "defaultenv")]
    default_env: Option<OneOrMany>,
    #[serde(alias = "defaultflags")]
    default_flags: Option<OneOrMany>,
    #[serde(alias = "defaultldflags")]
    default_ldflags: Option<OneOrMany>,
    #[serde(default, deserialize_with = "one_or_more_builds")]
    builds: Option<Vec<RawBuild>>,
    /// Beyond ko: image settings for every build.
    image: Option<RawImage>,
    /// Beyond ko: the default `--sign-key` (relative to the config file's directory).
    sign_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawBuild {
    id: Option<String>,
    dir: Option<String>,
    main: Option<String>,
    env: Option<OneOrMany>,
    flags: Option<OneOrMany>,
    ldflags: Option<OneOrMany>,
    linux_capabilities: Option<OneOrMany>,
    image: Option<RawImage>,
}

/// One `builds[]` entry. `None` fields fall back to the `default*` settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildConfig {
    pub id: String,
    pub dir: String,
    pub main: String,
    pub env: Option<Vec<String>>,
    pub flags: Option<Vec<String>>,
    pub ldflags: Option<Vec<String>>,
    pub linux_capabilities: Option<Vec<String>>,
    /// Beyond ko: image settings for this build, over the top-level `image:`.
    pub image: ImageConfig,
}

#[derive(Clone, Debug, Default)]
pub struct KoConfig {
    /// The file the settings came from, if any.
    pub path: Option<PathBuf>,
    pub default_base_image: Option<String>,
    /// Keys lowercased, without `ko://`.
    pub base_image_overrides: BTreeMap<String, String>,
    pub default_platforms: Vec<String>,
    pub default_env: Vec<String>,
    pub default_flags: Vec<String>,
    pub default_ldflags: Vec<String>,
    pub builds: Vec<BuildConfig>,
    /// Beyond ko: image settings for every build.
    pub image: ImageConfig,
    /// Beyond ko: `signKey`, the default `--sign-key`, resolved against the config's directory.
    pub sign_key: Option<PathBuf>,
    /// Keys nobody reads, by path (`builds[0].flgs ...`); `load` prints them as warnings.
    pub warnings: Vec<String>,
    /// The `default*` keys that a `KO_*` variable set (`defaultBaseImage` by
    /// `KO_DEFAULTBASEIMAGE`, ...), for errors to name the variable instead of the file.
    defaults_from_env: Vec<&'static str>,
}

/// `baseImageOverrides` as they are looked up: keys without `ko://` and in lower case (as
/// ko's settings library keeps them), and no empty values (those mean the default base).
fn overrides(map: BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.trim_start_matches("ko://").to_lowercase(), v))
        .collect()
}

impl KoConfig {
    /// Loads the config for a command run in `cwd`, then applies `KO_*` overrides.
    pub fn load(cwd: &Path, env: &Environment) -> Result<KoConfig, ConfigError> {
        let path = discovery::find(cwd, env)?;
        let mut config = match &path {
            Some(p) => Self::parse_file(p)?,
            None => KoConfig::default(),
        };
        for warning in &config.warnings {
            output::warn(format!("{}: {warning}", config.origin()));
        }
        config.apply_env(env)?;
        Ok(config)
    }

    /// Every path the configuration could be read from, whether it exists or not: what a watch
    /// watches.
    pub fn candidates(cwd: &Path, env: &Environment) -> Vec<PathBuf> {
        discovery::candidates(cwd, env)
    }

    pub fn parse_file(path: &Path) -> Result<KoConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.to_path_buf(), detail: e.to_string() })?;
        let mut config =
            Self::parse_str(&text).map_err(|detail| ConfigError::Invalid { path: path.to_path_buf(), detail })?;
        // Relative to the file; `~/` is the home directory, made so where the key is opened.
        if let (Some(key), Some(dir)) = (&config.sign_key, path.parent())
            && key.strip_prefix("~").is_err()
        {
            config.sign_key = Some(dir.join(key));
        }
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses YAML text; the error is one line naming the key (or the position).
    pub fn parse_str(text: &str) -> Result<KoConfig, String> {
        // ko reads the first document of its configuration and ignores any after it.
        let (text, empty) = match crate::yaml::first_document(text) {
            Some((first, empty)) => (first, empty),
            None => (text, text.trim().is_empty()),
        };
        let canonical = diagnostics::canonical_keys(text);
        let text = canonical.as_deref().unwrap_or(text);
        let findings = if empty { None } else { diagnostics::check(text) }.unwrap_or_default();
        let raw: RawConfig = if empty {
            RawConfig::default()
        } else {
            match serde_saphyr::from_str(text) {
                Ok(raw) => raw,
                // ko reads a top-level setting of the wrong type as unset: without those
                // (`diagnostics` warns about each), the rest is read.
                Err(_)
                    if let Some(raw) =
                        diagnostics::without_ignored(text, &findings).and_then(|t| serde_saphyr::from_str(&t).ok()) =>
                {
                    raw
                }
                Err(e) => {
                    // In the parser's words for users, without hints about its own options;
                    // the walk's, which name the key, first.
                    let words = e.render_with_formatter(&serde_saphyr::UserMessageFormatter);
                    return Err(findings.error.unwrap_or_else(|| one_line(&words)));
                }
            }
        };
        let diagnostics::Findings { mut warnings, error, .. } = findings;
        if let Some(error) = error {
            return Err(error);
        }
        // `builds:` and `baseImageOverrides:` with every entry commented out are null: empty,
        // as ko reads them.
        let raw_builds = raw.builds.unwrap_or_default();
        // ko names builds by id only in its messages, so it takes a repeated id; so does this,
        // with a word about it.
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, build) in raw_builds.iter().enumerate() {
            if let Some(id) = build.id.as_deref()
                && let Some(first) = ids.insert(id, i)
            {
                warnings.push(format!("builds[{i}].id {id:?} is also the id of builds[{first}]"));
            }
        }
        let builds = raw_builds
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let id = b.id.unwrap_or_else(|| format!("#{i}"));
                let place = format!("builds[{i}] (id {id})");
                let linux_capabilities = b.linux_capabilities.map(|v| v.into_vec(true));
                if let Some(caps) = &linux_capabilities {
                    FileCaps::parse(caps).map_err(|e| format!("{place}: {e}"))?;
                }
                Ok(BuildConfig {
                    image: image_config(b.image, &format!("{place}.image"))?,
                    id,
                    dir: b.dir.unwrap_or_else(|| ".".into()),
                    main: b.main.unwrap_or_else(|| ".".into()),
                    env: b.env.map(|v| v.into_vec(false)),
                    flags: b.flags.map(|v| v.into_vec(true)),
                    ldflags: b.ldflags.map(|v| v.into_vec(false)),
                    linux_capabilities,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(KoConfig {
            path: None,
            default_base_image: raw.default_base_image.filter(|s| !s.is_empty()),
            base_image_overrides: overrides(raw.base_image_overrides.unwrap_or_default()),
            // A single string is split on white space, as viper's GetStringSlice does in ko
            // (`defaultFlags: -tags netgo`, `defaultEnv: A=1 B=2`). Ldflags are joined into
            // one `-ldflags=` again, so theirs stays whole: the same flags, and a template
            // with spaces inside (`{{ .Env.V }}`) still reads as one.
            default_platforms: raw.default_platforms.map(|v| v.into_vec(true)).unwrap_or_default(),
            default_env: raw.default_env.map(|v| v.into_vec(true)).unwrap_or_default(),
            default_flags: raw.default_flags.map(|v| v.into_vec(true)).unwrap_or_default(),
            default_ldflags: raw.default_ldflags.map(|v| v.into_vec(false)).unwrap_or_default(),
            builds,
            image: image_config(raw.image, "image")?,
            sign_key: raw.sign_key.filter(|s| !s.is_empty()).map(PathBuf::from),
            warnings,
            defaults_from_env: Vec::new(),
        })
    }

    /// The `KO_*` variables, each replacing its `.ko.yaml` key when set to more than blanks.
    fn apply_env(&mut self, env: &Environment) -> Result<(), ConfigError> {
        let var = |name: &str| env.trimmed(name).map(str::to_string);
        // A JSON object, as ko's settings library reads a map from the environment.
        if let Some(v) = var("KO_BASEIMAGEOVERRIDES") {
            let map: BTreeMap<String, String> = serde_json::from_str(&v).map_err(|e| ConfigError::Env {
                var: "KO_BASEIMAGEOVERRIDES",
                value: v.clone(),
                detail: format!(
                    "not a JSON object of import paths to base images ({e}); write it as {{\"example.com/app/cmd/x\": \"registry.example.com/base:tag\"}}"
                ),
            })?;
            self.base_image_overrides = overrides(map);
            self.defaults_from_env.push("baseImageOverrides");
        }
        if let Some(v) = var("KO_DEFAULTBASEIMAGE") {
            self.default_base_image = Some(v.trim().to_string());
            self.defaults_from_env.push("defaultBaseImage");
        }
        if let Some(v) = var("KO_DEFAULTPLATFORMS") {
            self.default_platforms = v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        let split = |v: String| v.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        if let Some(v) = var("KO_DEFAULTENV") {
            self.default_env = split(v);
            self.defaults_from_env.push("defaultEnv");
        }
        if let Some(v) = var("KO_DEFAULTFLAGS") {
            self.default_flags = split(v);
            self.defaults_from_env.push("defaultFlags");
        }
        if let Some(v) = var("KO_DEFAULTLDFLAGS") {
            // One piece: ldflags are joined again (see `parse_str`).
            self.default_ldflags = vec![v];
            self.defaults_from_env.push("defaultLdflags");
        }
        Ok(())
    }

    /// Where an error about `defaultEnv`, `defaultFlags` or `defaultLdflags` should point:
    /// the `KO_*` variable that set it, or the file.
    pub fn default_place(&self, key: &'static str) -> String {
        if self.defaults_from_env.contains(&key) {
            format!("KO_{} (the environment)", key.to_ascii_uppercase())
        } else {
            format!("{key} in {}", self.origin())
        }
    }

    /// Where errors about the settings should point.
    pub fn origin(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the environment".into())
    }

    /// Every configured base image reference, with where it is set (for error lines).
    pub fn base_references(&self) -> Vec<(String, &str)> {
        let origin = self.origin();
        let mut found = Vec::new();
        if let Some(base) = &self.default_base_image {
            let place = if self.defaults_from_env.contains(&"defaultBaseImage") {
                "KO_DEFAULTBASEIMAGE".into()
            } else {
                format!("defaultBaseImage in {origin}")
            };
            found.push((place, base.as_str()));
        }
        for (key, base) in &self.base_image_overrides {
            let place = if self.defaults_from_env.contains(&"baseImageOverrides") {
                format!("KO_BASEIMAGEOVERRIDES[{key}]")
            } else {
                format!("baseImageOverrides[{key}] in {origin}")
            };
            found.push((place, base.as_str()));
        }
        found
    }

    /// The base image for an import path (without `ko://`), if configured.
    pub fn base_for(&self, import_path: &str) -> Option<&str> {
        self.base_image_overrides
            .get(&import_path.to_lowercase())
            .map(String::as_str)
            .or(self.default_base_image.as_deref())
    }
}

/// Keeps the first line of a parser message (the position and what is wrong), without the
/// source snippet the parser draws under it.
fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(text);
    let first = first.split(" --> ").next().unwrap_or(first);
    first.trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests;
