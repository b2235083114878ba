//! Editing Docker's `config.json` for `login` and `logout`: only the keys we own change, every
//! other field (and its order) is kept, and the file is replaced whole through a temp file
//! and a rename, keeping its mode (0600 for a new file).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::AuthError;
use super::keys::normalise_host;

pub struct DockerConfigFile {
    path: PathBuf,
    root: Map<String, Value>,
}

impl DockerConfigFile {
    /// Reads the file; a missing one is an empty config, a malformed one an error naming it.
    pub fn load(path: &Path) -> Result<DockerConfigFile, AuthError> {
        let bad = |detail: String| AuthError::BadConfig { path: path.to_path_buf(), detail };
        let root = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes).map_err(|e| bad(e.to_string()))? {
                Value::Object(map) => map,
                _ => return Err(bad("it is not a JSON object".into())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(super::docker_config::unreadable(path, e)),
        };
        Ok(DockerConfigFile { path: path.to_path_buf(), root })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn object(&mut self, key: &str) -> Result<&mut Map<String, Value>, AuthError> {
        let value = self.root.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
        match value {
            Value::Object(map) => Ok(map),
            _ => Err(AuthError::BadConfig { path: self.path.clone(), detail: format!("{key} is not a JSON object") }),
        }
    }

    /// Sets `credHelpers[server] = helper`, replacing any other spelling of the same host.
    pub fn set_cred_helper(&mut self, server: &str, helper: &str) -> Result<(), AuthError> {
        let host = normalise_host(server);
        let helpers = self.object("credHelpers")?;
        helpers.retain(|k, _| k == server || normalise_host(k) != host);
        helpers.insert(server.to_string(), Value::String(helper.to_string()));
        Ok(())
    }

    /// The helper `credHelpers` names for this server, if any.
    pub fn cred_helper(&self, server: &str) -> Option<String> {
        let host = normalise_host(server);
        let helpers = self.root.get("credHelpers")?.as_object()?;
        helpers.iter().find(|(k, _)| normalise_host(k) == host).and_then(|(_, v)| v.as_str().map(str::to_string))
    }

    /// The helper `credsStore` names for every server without a `credHelpers` entry, if any.
    pub fn creds_store(&self) -> Option<String> {
        self.root.get("credsStore")?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
    }

    /// The helper that holds this server's credentials instead of docker-credential-ko, as
    /// Docker picks it: `credHelpers[server]`, else `credsStore`; `None` when that is `ours`.
    pub fn other_helper(&self, server: &str, ours: &str) -> Option<(String, String)> {
        let (helper, key) = match self.cred_helper(server) {
            // An empty entry names no helper: Docker keeps that server's login in `auths`.
            Some(helper) if helper.is_empty() => return None,
            Some(helper) => (helper, format!("credHelpers[{server}]")),
            None => (self.creds_store()?, "credsStore".to_string()),
        };
        (helper != ours).then(|| (helper.clone(), format!("{key} = \"{helper}\" in {}", self.path.display())))
    }

    /// Lists `server` in `auths` with no credentials, as Docker does for a login kept by a
    /// helper, after removing every entry of the same host (a password there would be stale).
    pub fn set_empty_auths(&mut self, server: &str) -> Result<(), AuthError> {
        self.remove_auths(server);
        self.object("auths")?.insert(server.to_string(), Value::Object(Map::new()));
        Ok(())
    }

    /// Removes `credHelpers[server]` when it names `helper`; `true` when it did.
    pub fn remove_cred_helper(&mut self, server: &str, helper: &str) -> bool {
        let host = normalise_host(server);
        let Some(Value::Object(helpers)) = self.root.get_mut("credHelpers") else { return false };
        let before = helpers.len();
        helpers.retain(|k, v| normalise_host(k) != host || v.as_str() != Some(helper));
        helpers.len() != before
    }

    /// Removes every `auths` entry for this server; `true` when there was one.
    pub fn remove_auths(&mut self, server: &str) -> bool {
        let host = normalise_host(server);
        let Some(Value::Object(auths)) = self.root.get_mut("auths") else { return false };
        let before = auths.len();
        auths.retain(|k, _| normalise_host(k) != host);
        auths.len() != before
    }

    pub fn save(&self) -> Result<(), AuthError> {
        super::store::refuse_relative(&self.path)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io { path, source }
        };
        // A config.json that is a symlink (dotfile managers) is written where it points, and
        // stays a symlink.
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| link_target(&self.path));
        let dir = target.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        let mode = std::fs::metadata(&target).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        let mut json = serde_json::to_vec_pretty(&Value::Object(self.root.clone())).expect("JSON serialises");
        json.push(b'\n');
        let mut temp = tempfile::Builder::new().prefix(".config.json").tempfile_in(dir).map_err(io(dir))?;
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io(temp.path()))?;
        temp.write_all(&json).and_then(|()| temp.as_file().sync_all()).map_err(io(temp.path()))?;
        temp.persist(&target).map_err(|e| AuthError::Io { path: target.clone(), source: e.error })?;
        Ok(())
    }
}

/// Where a symlink that leads nowhere yet (a dotfile manager's link to a file not made yet)
/// points, followed link by link; the path itself when it is no link.
fn link_target(path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let Ok(link) = std::fs::read_link(&current) else { break };
        current = match current.parent() {
            Some(parent) if link.is_relative() => parent.join(link),
            _ => link,
        };
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_config_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles-config.json");
        std::fs::write(&real, "{}").unwrap();
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut config = DockerConfigFile::load(&link).unwrap();
        config.set_cred_helper("r.example", "ko").unwrap();
        config.save().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("\"r.example\": \"ko\""));

        // A link to a file not made yet: the file is made where it points, the link stays.
        let dangling = dir.path().join("other/config.json");
        std::fs::create_dir_all(dangling.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("../dotfiles/new-config.json", &dangling).unwrap();
        let mut config = DockerConfigFile::load(&dangling).unwrap();
        config.set_cred_helper("r.example", "ko").unwrap();
        config.save().unwrap();
        assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert!(std::fs::read_to_string(dir.path().join("dotfiles/new-config.json")).unwrap().contains("r.example"));
    }

    #[test]
    fn edits_keep_every_other_field_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let original = r#"{"psFormat":"table","auths":{"r.example":{"auth":"dTpw"},"o.example":{}},"credHelpers":{"gcr.io":"gcloud"},"zzz":[1,2]}"#;
        std::fs::write(&path, original).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut config = DockerConfigFile::load(&path).unwrap();
        config.set_cred_helper("r.example", "ko").unwrap();
        config.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let keys: Vec<&str> = ["psFormat", "auths", "credHelpers", "zzz"].into_iter().collect();
        let positions: Vec<usize> = keys.iter().map(|k| text.find(&format!("\"{k}\"")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["credHelpers"]["r.example"], "ko");
        assert_eq!(value["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);

        let mut config = DockerConfigFile::load(&path).unwrap();
        assert_eq!(config.cred_helper("https://r.example/"), Some("ko".into()));
        assert!(!config.remove_cred_helper("gcr.io", "ko"));
        assert!(config.remove_cred_helper("r.example", "ko"));
        assert!(config.remove_auths("r.example"));
        config.save().unwrap();
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(value["credHelpers"].get("r.example").is_none());
        assert!(value["auths"].get("r.example").is_none() && value["auths"].get("o.example").is_some());
        assert_eq!(value["zzz"], serde_json::json!([1, 2]));
    }

    #[test]
    fn new_files_are_private_and_malformed_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/config.json");
        let mut config = DockerConfigFile::load(&path).unwrap();
        config.set_cred_helper("r.example", "ko").unwrap();
        config.save().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&path, "[1]").unwrap();
        let err = DockerConfigFile::load(&path).err().unwrap().to_string();
        assert!(err.contains(path.to_str().unwrap()) && err.contains("not a JSON object"), "{err}");
    }
}
