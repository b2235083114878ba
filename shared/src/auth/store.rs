//! The suite's own credential store, behind `docker-credential-ko`: one JSON file beside the
//! Docker config in use when `DOCKER_CONFIG` names one (`$DOCKER_CONFIG/kubectl-ko/
//! credentials.json`: each config keeps its own logins, as the `auths` of ko's logins do;
//! `DOCKER_CONFIG=~/.docker` is the default config), else under the user's config directory
//! (`${XDG_CONFIG_HOME:-~/.config}/kubectl-ko/credentials.json`); mode 0600 in a 0700
//! directory, always replaced whole through a temp file and a rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::keys::{normalise_host, without_scheme};
use super::{AuthError, Secret};
use crate::settings::Environment;

/// One stored entry, as the helper protocol sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredential {
    pub server_url: String,
    pub username: String,
    pub secret: Secret,
}

#[derive(Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    credentials: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "serverURL")]
    server_url: String,
    username: String,
    secret: String,
}

/// Credentials are never written relative to the working directory (a project checkout),
/// which is where `~` points when no home directory is known.
pub(super) fn refuse_relative(path: &Path) -> Result<(), AuthError> {
    if path.is_absolute() {
        return Ok(());
    }
    Err(AuthError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(
            "no home directory is known (HOME is unset and the user has none in /etc/passwd); set HOME, or XDG_CONFIG_HOME and DOCKER_CONFIG",
        ),
    })
}

/// The store's lock, released when dropped (see [`CredentialStore::lock`]).
pub struct StoreLock(#[allow(dead_code)] std::fs::File);

#[derive(Clone, Debug)]
pub struct CredentialStore {
    path: PathBuf,
    /// Where logins made with `DOCKER_CONFIG` set to the default directory were kept before
    /// that meant the default store: read when `path` has no entry, erased with it.
    earlier: Option<PathBuf>,
}

impl CredentialStore {
    /// The store of the Docker config in use (see the module docs). A relative
    /// `DOCKER_CONFIG` is taken from the working directory, as Docker takes it; one that names
    /// the default directory (`~/.docker`, as CI jobs and IDEs often export it) is the default
    /// config, with the default store, so that a login is found with the variable set or not.
    pub fn new(env: &Environment) -> CredentialStore {
        let default = env.config_home().join("kubectl-ko/credentials.json");
        let Some(config) = env.path("DOCKER_CONFIG") else { return CredentialStore::at(default) };
        let config = match config.is_relative() {
            true => std::env::current_dir().map(|cwd| cwd.join(&config)).unwrap_or(config),
            false => config,
        };
        let beside = config.join("kubectl-ko/credentials.json");
        let home_docker = env.home().map(|home| home.join(".docker"));
        if home_docker.is_some_and(|d| same_dir(&d, &config)) {
            return CredentialStore { path: default, earlier: Some(beside) };
        }
        CredentialStore::at(beside)
    }

    pub fn at(path: PathBuf) -> CredentialStore {
        CredentialStore { path, earlier: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store logins were kept in before this one (see `earlier`).
    fn earlier(&self) -> Option<CredentialStore> {
        self.earlier.clone().map(CredentialStore::at)
    }

    fn read(&self) -> Result<StoreFile, AuthError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AuthError::BadStore { path: self.path.clone(), detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
            Err(source) => Err(AuthError::Io { path: self.path.clone(), source }),
        }
    }

    /// Takes the store's lock (an exclusive flock on `credentials.lock` beside the store),
    /// held until the guard is dropped. Every change to the store, and `login`'s and
    /// `logout`'s changes to `config.json` with it, are made under it: two logins or helper
    /// `store`s at once would otherwise each write back what they read, losing the other's.
    pub fn lock(&self) -> Result<StoreLock, AuthError> {
        refuse_relative(&self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io { path, source }
        };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        let path = dir.join("credentials.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(StoreLock(file))
    }

    fn write(&self, file: &StoreFile) -> Result<(), AuthError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io { path, source }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        let json = serde_json::to_vec_pretty(file).expect("the store serialises");
        let mut temp = tempfile::Builder::new().prefix(".credentials").tempfile_in(dir).map_err(io(dir))?;
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io(temp.path()))?;
        temp.write_all(&json).and_then(|()| temp.as_file().sync_all()).map_err(io(temp.path()))?;
        temp.persist(&self.path).map_err(|e| AuthError::Io { path: self.path.clone(), source: e.error })?;
        Ok(())
    }

    pub fn get(&self, server: &str) -> Result<Option<StoredCredential>, AuthError> {
        let file = self.read()?;
        let found = file.credentials.get(&store_key(server)).map(|e| StoredCredential {
            server_url: e.server_url.clone(),
            username: e.username.clone(),
            secret: Secret::new(e.secret.clone()),
        });
        match (found, self.earlier()) {
            (None, Some(earlier)) => earlier.get(server),
            (found, _) => Ok(found),
        }
    }

    pub fn store(&self, server_url: &str, username: &str, secret: &Secret) -> Result<(), AuthError> {
        let lock = self.lock()?;
        self.store_locked(&lock, server_url, username, secret)
    }

    /// [`CredentialStore::store`] under a lock the caller holds.
    pub fn store_locked(
        &self,
        _lock: &StoreLock,
        server_url: &str,
        username: &str,
        secret: &Secret,
    ) -> Result<(), AuthError> {
        let mut file = self.read()?;
        file.credentials.insert(
            store_key(server_url),
            Entry {
                server_url: server_url.to_string(),
                username: username.to_string(),
                secret: secret.expose().into(),
            },
        );
        self.write(&file)
    }

    /// Removes a server's entry; `false` when there was none.
    pub fn erase(&self, server: &str) -> Result<bool, AuthError> {
        let lock = self.lock()?;
        self.erase_locked(&lock, server)
    }

    /// [`CredentialStore::erase`] under a lock the caller holds.
    pub fn erase_locked(&self, _lock: &StoreLock, server: &str) -> Result<bool, AuthError> {
        let erased_earlier = match self.earlier() {
            Some(earlier) if earlier.path.exists() => earlier.erase(server)?,
            _ => false,
        };
        let mut file = self.read()?;
        if file.credentials.remove(&store_key(server)).is_none() {
            return Ok(erased_earlier);
        }
        self.write(&file)?;
        Ok(true)
    }

    /// Server URL → username, for the helper's `list`.
    pub fn list(&self) -> Result<BTreeMap<String, String>, AuthError> {
        let mut listed = match self.earlier() {
            Some(earlier) => earlier.list()?,
            None => BTreeMap::new(),
        };
        listed.extend(self.read()?.credentials.into_values().map(|e| (e.server_url, e.username)));
        Ok(listed)
    }
}

/// The key of a server's entry: its host as every spelling of it normalises, so that
/// `https://r.example/v2/` and `r.example` are one login; a server URL with a path of its own
/// beyond the API's root (Docker Hub's `…/v1/access-token` and `…/v1/refresh-token`, which
/// Docker's web login stores beside the login itself) keeps that path, and its own entry.
fn store_key(server: &str) -> String {
    let host = normalise_host(server);
    let path = without_scheme(server).split_once('/').map_or("", |(_, path)| path.trim_matches('/'));
    match path {
        "" | "v1" | "v2" => host,
        path => format!("{host}/{path}"),
    }
}

/// Whether two directory paths name one directory: the same files when both exist, else the
/// same spelling once `.` and trailing slashes are left out.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.components().eq(b.components()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_at_the_same_time_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let store = CredentialStore::at(path.clone());
                std::thread::spawn(move || {
                    for i in 0..10 {
                        store.store(&format!("r{w}-{i}.example"), "u", &Secret::new("p")).unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(CredentialStore::at(path).list().unwrap().len(), 80);
    }

    #[test]
    fn stores_privately_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("sub/credentials.json"));
        assert!(store.get("r.example").unwrap().is_none());
        store.store("https://r.example/v2/", "alice", &Secret::new("s3cret")).unwrap();
        store.store("other.example:5000", "bob", &Secret::new("x")).unwrap();
        let got = store.get("r.example").unwrap().unwrap();
        assert_eq!(got.username, "alice");
        assert_eq!(got.secret.expose(), "s3cret");
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("sub")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(store.list().unwrap().get("other.example:5000").map(String::as_str), Some("bob"));
        assert!(store.erase("r.example").unwrap());
        assert!(!store.erase("r.example").unwrap());
        assert!(store.get("r.example").unwrap().is_none());
        // No temp files are left behind: the store and its lock.
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["credentials.json", "credentials.lock"]);
        // Never relative to the working directory.
        let relative = CredentialStore::at(PathBuf::from(".config/kubectl-ko/credentials.json"));
        let error = relative.store("r.example", "a", &Secret::new("b")).unwrap_err().to_string();
        assert!(error.contains("no home directory is known"), "{error}");
    }

    #[test]
    fn the_store_is_beside_docker_config_else_under_xdg_config_home_else_home() {
        let docker = Environment::from_pairs([("DOCKER_CONFIG", "/d"), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(CredentialStore::new(&docker).path(), Path::new("/d/kubectl-ko/credentials.json"));
        let relative = Environment::from_pairs([("DOCKER_CONFIG", "d"), ("HOME", "/h")]);
        assert_eq!(
            CredentialStore::new(&relative).path(),
            std::env::current_dir().unwrap().join("d/kubectl-ko/credentials.json")
        );
        let xdg = Environment::from_pairs([("DOCKER_CONFIG", ""), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(CredentialStore::new(&xdg).path(), Path::new("/x/kubectl-ko/credentials.json"));
        let home = Environment::from_pairs([("XDG_CONFIG_HOME", ""), ("HOME", "/h")]);
        let relative = Environment::from_pairs([("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]);
        assert_eq!(CredentialStore::new(&relative).path(), Path::new("/h/.config/kubectl-ko/credentials.json"));
        assert_eq!(CredentialStore::new(&home).path(), Path::new("/h/.config/kubectl-ko/credentials.json"));
        // DOCKER_CONFIG naming the default directory is the default config, and store.
        for spelled in ["/h/.docker", "/h/.docker/", "/h/./.docker"] {
            let default = Environment::from_pairs([("DOCKER_CONFIG", spelled), ("HOME", "/h")]);
            let store = CredentialStore::new(&default);
            assert_eq!(store.path(), Path::new("/h/.config/kubectl-ko/credentials.json"), "{spelled}");
        }
    }

    #[test]
    fn a_login_kept_beside_the_default_docker_config_is_still_found_and_erased() {
        let home = tempfile::tempdir().unwrap();
        let docker = home.path().join(".docker");
        let earlier = CredentialStore::at(docker.join("kubectl-ko/credentials.json"));
        earlier.store("r.example", "alice", &Secret::new("s")).unwrap();
        let env = Environment::from_pairs([
            ("DOCKER_CONFIG", docker.to_str().unwrap()),
            ("HOME", home.path().to_str().unwrap()),
        ]);
        let store = CredentialStore::new(&env);
        assert_eq!(store.path(), home.path().join(".config/kubectl-ko/credentials.json"));
        assert_eq!(store.get("r.example").unwrap().unwrap().username, "alice");
        assert!(store.erase("r.example").unwrap());
        assert!(store.get("r.example").unwrap().is_none() && earlier.get("r.example").unwrap().is_none());
    }

    #[test]
    fn docker_hubs_token_entries_are_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("credentials.json"));
        for suffix in ["", "refresh-token", "access-token"] {
            store
                .store(&format!("https://index.docker.io/v1/{suffix}"), "alice", &Secret::new(format!("S-{suffix}")))
                .unwrap();
        }
        assert_eq!(store.get("https://index.docker.io/v1/").unwrap().unwrap().secret.expose(), "S-");
        assert_eq!(store.get("docker.io").unwrap().unwrap().secret.expose(), "S-");
        assert_eq!(
            store.get("https://index.docker.io/v1/access-token").unwrap().unwrap().secret.expose(),
            "S-access-token"
        );
        assert_eq!(store.list().unwrap().len(), 3);
        assert!(store.erase("https://index.docker.io/v1/access-token").unwrap());
        assert_eq!(store.get("https://index.docker.io/v1/").unwrap().unwrap().secret.expose(), "S-");
        assert_eq!(store_key("https://R.example:5000/v2/"), "r.example:5000");
    }

    #[test]
    fn a_malformed_store_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        std::fs::write(&path, "{oops").unwrap();
        let err = CredentialStore::at(path.clone()).get("r").unwrap_err().to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
    }
}
