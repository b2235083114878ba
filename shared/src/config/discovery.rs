//! Which file is the configuration: the one `KO_CONFIG_PATH` names (a file, or a directory
//! holding `.ko.yaml`), else the first of ko's names (`.ko.json`, `.ko.toml`, `.ko.yaml`, ...,
//! in its config library's order) that exists in the working directory. One in a format
//! kubectl-ko does not read is refused by name rather than passed over.

use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::settings::Environment;

/// The extensions ko's viper tries for `.ko` in the working directory, in its order: the
/// first file that exists is the configuration, whatever its format.
const VIPER_EXTENSIONS: [&str; 12] =
    ["json", "toml", "yaml", "yml", "properties", "props", "prop", "hcl", "tfvars", "dotenv", "env", "ini"];

/// The formats kubectl-ko reads (JSON is YAML).
const READ_EXTENSIONS: [&str; 3] = ["json", "yaml", "yml"];

/// `.ko.<ext>` in `cwd`, in ko's order.
fn working_directory_names(cwd: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    VIPER_EXTENSIONS.iter().map(move |e| cwd.join(format!(".ko.{e}")))
}

/// `KO_CONFIG_PATH` taken from `cwd`, with `.` and `..` resolved as written, as Go's
/// `filepath.Join` in ko resolves them (and so that a watch knows the file by the same name
/// its events give).
fn config_path(cwd: &Path, value: &std::ffi::OsStr) -> PathBuf {
    crate::gobuild::normalize(&cwd.join(value))
}

/// Every path the configuration could be read from, whether it exists or not.
pub(super) fn candidates(cwd: &Path, env: &Environment) -> Vec<PathBuf> {
    match env.non_empty("KO_CONFIG_PATH") {
        Some(value) => {
            let path = config_path(cwd, value);
            vec![path.join(".ko.yaml"), path]
        }
        None => working_directory_names(cwd).collect(),
    }
}

/// The configuration file, or `None` when there is none (which is fine).
pub(super) fn find(cwd: &Path, env: &Environment) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(value) = env.non_empty("KO_CONFIG_PATH") {
        let path = config_path(cwd, value);
        let meta =
            std::fs::metadata(&path).map_err(|e| ConfigError::Missing { path: path.clone(), detail: e.to_string() })?;
        if meta.is_file() {
            return readable(path).map(Some);
        }
        let inner = path.join(".ko.yaml");
        return match std::fs::metadata(&inner) {
            Ok(m) if m.is_file() => Ok(Some(inner)),
            Ok(_) => Err(ConfigError::Missing { path: inner, detail: "is not a regular file".into() }),
            Err(e) => Err(ConfigError::Missing { path: inner, detail: e.to_string() }),
        };
    }
    working_directory_names(cwd).find(|p| p.is_file()).map(readable).transpose()
}

/// Refuses a configuration in a format ko's viper reads but kubectl-ko does not, rather
/// than reading another file (or none) in its place.
fn readable(path: PathBuf) -> Result<PathBuf, ConfigError> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if VIPER_EXTENSIONS.contains(&extension.as_str()) && !READ_EXTENSIONS.contains(&extension.as_str()) {
        return Err(ConfigError::Format { path, format: extension });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::KoConfig;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn the_working_directory_config_is_the_first_in_vipers_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".ko.yaml"), "defaultPlatforms: [linux/s390x]\n").unwrap();
        std::fs::write(dir.path().join(".ko.json"), r#"{"defaultPlatforms": ["linux/arm64"]}"#).unwrap();
        let c = KoConfig::load(dir.path(), &env(&[])).unwrap();
        assert_eq!(c.default_platforms, ["linux/arm64"], "ko reads .ko.json before .ko.yaml");

        // A .ko.toml comes before .ko.yaml for ko: refused, not passed over for the YAML.
        std::fs::remove_file(dir.path().join(".ko.json")).unwrap();
        std::fs::write(dir.path().join(".ko.toml"), "defaultPlatforms = [\"linux/arm64\"]\n").unwrap();
        let err = KoConfig::load(dir.path(), &env(&[])).unwrap_err().to_string();
        assert!(err.contains(".ko.toml: kubectl-ko reads YAML and JSON, not toml"), "{err}");
        assert!(KoConfig::candidates(dir.path(), &env(&[])).contains(&dir.path().join(".ko.toml")));

        // One that comes after it is never looked at.
        std::fs::remove_file(dir.path().join(".ko.toml")).unwrap();
        std::fs::write(dir.path().join(".ko.ini"), "x=1\n").unwrap();
        assert_eq!(KoConfig::load(dir.path(), &env(&[])).unwrap().default_platforms, ["linux/s390x"]);
        let err = KoConfig::load(dir.path(), &env(&[("KO_CONFIG_PATH", ".ko.ini")])).unwrap_err().to_string();
        assert!(err.contains("not ini"), "{err}");
    }

    #[test]
    fn ko_config_path_names_a_file_or_a_directory_instead_of_the_working_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".ko.yaml"), "defaultPlatforms: [linux/s390x]\n").unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/.ko.yaml"), "defaultPlatforms: [linux/arm64]\n").unwrap();
        std::fs::write(dir.path().join("other.yaml"), "defaultPlatforms: [linux/ppc64le]\n").unwrap();

        let platforms = |pairs: &[(&str, &str)]| KoConfig::load(dir.path(), &env(pairs)).unwrap().default_platforms;
        assert_eq!(platforms(&[]), ["linux/s390x"]);
        assert_eq!(platforms(&[("KO_CONFIG_PATH", "conf")]), ["linux/arm64"]);
        assert_eq!(platforms(&[("KO_CONFIG_PATH", "other.yaml")]), ["linux/ppc64le"]);
        assert_eq!(platforms(&[("KO_CONFIG_PATH", "")]), ["linux/s390x"]);
        assert!(KoConfig::load(dir.path(), &env(&[("KO_CONFIG_PATH", "missing")])).is_err());

        // `..` is resolved as written, so that a watch knows the file by its events' name.
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let up = env(&[("KO_CONFIG_PATH", "../conf")]);
        assert_eq!(KoConfig::load(&app, &up).unwrap().path, Some(dir.path().join("conf/.ko.yaml")));
        assert_eq!(KoConfig::candidates(&app, &up)[0], dir.path().join("conf/.ko.yaml"));
    }
}
