//! The shared AWS profile files: `AWS_PROFILE` (default `default`) in
//! `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`, sections `[name]`) and `AWS_CONFIG_FILE`
//! (`~/.aws/config`, sections `[profile name]` and `[default]`); the credentials file wins a
//! key both set. A profile gives static keys, or a role to assume with a web identity token
//! file. SSO, `credential_process` and role chaining (`source_profile`) are not supported: a
//! profile that needs them is an error that says so, not a silent fall-through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::credentials::{AwsCredentials, Chain};
use super::sts;
use crate::auth::{AuthError, Secret};
use crate::settings::Environment;

/// Profile keys that select a way of getting credentials kubectl-ko does not implement.
const UNSUPPORTED: &[&str] =
    &["sso_session", "sso_start_url", "sso_account_id", "credential_process", "source_profile", "credential_source"];

#[derive(Debug)]
pub struct Profile {
    name: String,
    /// key → (value, the file it came from)
    values: BTreeMap<String, (String, PathBuf)>,
}

impl Profile {
    /// The selected profile from the two files; `None` when neither has it (an error when
    /// `AWS_PROFILE` names it explicitly, as in the SDKs).
    pub fn load(env: &Environment) -> Result<Option<Profile>, AuthError> {
        let explicit = env.trimmed("AWS_PROFILE");
        let name = explicit.unwrap_or("default").to_string();
        let home = env.home().map(|h| h.join(".aws"));
        let credentials =
            env.path("AWS_SHARED_CREDENTIALS_FILE").or_else(|| home.as_ref().map(|h| h.join("credentials")));
        let config = env.path("AWS_CONFIG_FILE").or_else(|| home.as_ref().map(|h| h.join("config")));
        let mut values = BTreeMap::new();
        if let Some(path) = config {
            let headers = [format!("profile {name}"), if name == "default" { name.clone() } else { String::new() }];
            merge(&mut values, &path, &headers)?;
        }
        if let Some(path) = credentials {
            merge(&mut values, &path, std::slice::from_ref(&name))?;
        }
        match (values.is_empty(), explicit) {
            (false, _) => Ok(Some(Profile { name, values })),
            (true, None) => Ok(None),
            (true, Some(_)) => Err(super::error(format!(
                "AWS_PROFILE={name} is in neither the credentials nor the config file; fix or unset it"
            ))),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(value, _)| value.as_str()).filter(|v| !v.is_empty())
    }

    /// `profile NAME in FILE`, FILE being where `key` was set.
    fn origin(&self, key: &str) -> String {
        let file = self.values.get(key).map(|(_, path)| path.display().to_string()).unwrap_or_default();
        format!("profile {} in {file}", self.name)
    }
}

/// Reads the keys of the sections named `headers` in `path` into `values` (later files win);
/// a missing file adds nothing.
fn merge(values: &mut BTreeMap<String, (String, PathBuf)>, path: &Path, headers: &[String]) -> Result<(), AuthError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(super::error(format!("reading {}: {e}", path.display()))),
    };
    for (key, value) in section(&text, headers) {
        values.insert(key, (value, path.to_path_buf()));
    }
    Ok(())
}

/// The `key = value` lines of the INI sections whose header is one of `headers` (blank
/// headers never match). Comments (`#`, `;`) and indented sub-keys are skipped.
fn section(text: &str, headers: &[String]) -> Vec<(String, String)> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = headers.iter().any(|h| !h.is_empty() && *h == header);
        } else if inside
            && !line.starts_with(['#', ';'])
            && let Some((key, value)) = line.split_once('=')
        {
            found.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    found
}

/// The profile's credentials: static keys, or a web identity role; `None` when it has
/// neither (a profile that only sets a region).
pub async fn credentials(chain: &Chain<'_>, profile: Option<&Profile>) -> Result<Option<AwsCredentials>, AuthError> {
    let Some(profile) = profile else { return Ok(None) };
    if let Some(found) = static_keys(profile)? {
        return Ok(Some(found));
    }
    if let (Some(role), Some(file)) = (profile.get("role_arn"), profile.get("web_identity_token_file")) {
        let request = sts::WebIdentity {
            role_arn: role.to_string(),
            token_file: PathBuf::from(file),
            session_name: profile.get("role_session_name").map(str::to_string),
            region: chain.region(Some(profile)),
            origin: format!("{} (web identity)", profile.origin("role_arn")),
        };
        return sts::assume_role_with_web_identity(chain, &request).await.map(Some);
    }
    if let Some(key) = UNSUPPORTED.iter().find(|key| profile.get(key).is_some()) {
        return Err(super::error(format!(
            "{} uses {key}, which kubectl-ko does not support; use access keys or a web identity, or `docker login` with `aws ecr get-login-password`",
            profile.origin(key)
        )));
    }
    Ok(None)
}

fn static_keys(profile: &Profile) -> Result<Option<AwsCredentials>, AuthError> {
    match (profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(AwsCredentials {
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret),
            session_token: profile.get("aws_session_token").map(Secret::new),
            origin: profile.origin("aws_access_key_id"),
        })),
        (None, None) => Ok(None),
        _ => Err(super::error(format!(
            "{} has only one of aws_access_key_id and aws_secret_access_key; set both",
            profile.origin(if profile.get("aws_access_key_id").is_some() {
                "aws_access_key_id"
            } else {
                "aws_secret_access_key"
            })
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(credentials: &str, config: &str) -> (tempfile::TempDir, Vec<(String, String)>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
        std::fs::write(dir.path().join(".aws/config"), config).unwrap();
        let home = vec![("HOME".to_string(), dir.path().display().to_string())];
        (dir, home)
    }

    fn keys(env: Vec<(String, String)>) -> Result<Option<AwsCredentials>, AuthError> {
        match Profile::load(&Environment::from_pairs(env))? {
            Some(profile) => static_keys(&profile),
            None => Ok(None),
        }
    }

    const CREDENTIALS: &str = "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[ci]\naws_access_key_id=AKIDCI\n; c\naws_secret_access_key=s2\naws_session_token = t2\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile ci]\nregion = us-west-2\ns3 =\n  max_concurrent_requests = 1\n[profile sso]\nsso_session = corp\n[ci]\naws_access_key_id = WRONG\n";

    #[test]
    fn default_and_named_profiles_from_both_files() {
        let (dir, home) = files(CREDENTIALS, CONFIG);
        let found = keys(home.clone()).unwrap().unwrap();
        assert_eq!(found.access_key_id, "AKIDDEFAULT");
        assert_eq!(found.origin, format!("profile default in {}", dir.path().join(".aws/credentials").display()));
        let mut ci = home.clone();
        ci.push(("AWS_PROFILE".into(), "ci".into()));
        let found = keys(ci.clone()).unwrap().unwrap();
        assert_eq!((found.access_key_id.as_str(), found.session_token.unwrap().expose()), ("AKIDCI", "t2"));
        let profile = Profile::load(&Environment::from_pairs(ci)).unwrap().unwrap();
        assert_eq!(profile.get("region"), Some("us-west-2"));
        assert_eq!(profile.get("max_concurrent_requests"), None);
    }

    #[test]
    fn a_named_profile_that_is_missing_or_unsupported_is_an_error() {
        let (_dir, mut home) = files(CREDENTIALS, CONFIG);
        home.push(("AWS_PROFILE".into(), "nope".into()));
        let err = keys(home.clone()).unwrap_err().to_string();
        assert!(err.starts_with("ECR: AWS_PROFILE=nope is in neither"), "{err}");
        home.push(("AWS_PROFILE".into(), "sso".into()));
        let env = Environment::from_pairs(home);
        let profile = Profile::load(&env).unwrap();
        let http = crate::auth::cloud::CloudHttp::new(&env, &[]);
        let chain = Chain::new(&env, &http, "us-east-1");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let err = rt.block_on(credentials(&chain, profile.as_ref())).unwrap_err().to_string();
        assert!(err.contains("profile sso in ") && err.contains("uses sso_session"), "{err}");
    }

    #[test]
    fn explicit_file_variables_and_half_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "[default]\naws_access_key_id = AKID\n").unwrap();
        let env = vec![("AWS_SHARED_CREDENTIALS_FILE".to_string(), path.display().to_string())];
        let err = keys(env).unwrap_err().to_string();
        assert!(err.contains("only one of aws_access_key_id"), "{err}");
        let none = vec![("HOME".to_string(), dir.path().display().to_string())];
        assert!(keys(none).unwrap().is_none());
    }
}
