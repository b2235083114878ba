//! Application Default Credentials: which credentials apply, in Google's order.
//! `GOOGLE_APPLICATION_CREDENTIALS` (a JSON file that must be readable once named), then
//! gcloud's `application_default_credentials.json` in `CLOUDSDK_CONFIG` (default
//! `~/.config/gcloud`), then the metadata server when this is a Google machine. A file's
//! `type` says which kind it holds (`service_account`, `authorized_user`, `external_account`,
//! `impersonated_service_account`); each kind reads its own fields ([`Fields`]). Fetching
//! the token is the kinds' business, not this module's.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::external::ExternalAccount;
use super::impersonated::Impersonated;
use super::metadata::{self, MetadataServer};
use super::service_account::ServiceAccount;
use super::token::error;
use super::user::AuthorizedUser;
use crate::auth::AuthError;
use crate::settings::Environment;

/// Where to look, from the environment (no I/O until [`AdcSettings::find`]).
#[derive(Debug)]
pub struct AdcSettings {
    explicit: Option<PathBuf>,
    gcloud_file: Option<PathBuf>,
    metadata: metadata::Detection,
}

/// The credentials that apply.
#[derive(Debug)]
pub enum Adc {
    ServiceAccount(ServiceAccount),
    AuthorizedUser(AuthorizedUser),
    External(ExternalAccount),
    Impersonated(Impersonated),
    Metadata(MetadataServer),
}

impl AdcSettings {
    pub fn from_env(env: &Environment) -> AdcSettings {
        let gcloud_dir = env.path("CLOUDSDK_CONFIG").or_else(|| Some(env.home()?.join(".config/gcloud")));
        AdcSettings {
            explicit: env.path("GOOGLE_APPLICATION_CREDENTIALS"),
            gcloud_file: gcloud_dir.map(|d| d.join("application_default_credentials.json")),
            metadata: metadata::Detection::from_env(env),
        }
    }

    /// The first credentials present; `None` when there are none (not a Google machine).
    pub fn find(&self) -> Result<Option<Adc>, AuthError> {
        if let Some(path) = &self.explicit {
            let text = std::fs::read(path).map_err(|e| {
                error(format!("GOOGLE_APPLICATION_CREDENTIALS names {}, which cannot be read: {e}", path.display()))
            })?;
            return parse(&text, path).map(Some);
        }
        if let Some(path) = self.gcloud_file.as_deref().filter(|p| p.is_file()) {
            let text = std::fs::read(path).map_err(|e| error(format!("reading {}: {e}", path.display())))?;
            return parse(&text, path).map(Some);
        }
        Ok(self.metadata.server().map(Adc::Metadata))
    }
}

impl Adc {
    /// Says which credentials these are, for `-v` and errors; also the cache key, since one
    /// token serves every Google registry.
    pub fn describe(&self) -> String {
        let (kind, place) = match self {
            Adc::ServiceAccount(sa) => ("service account", format!("in {}", sa.file.display())),
            Adc::AuthorizedUser(user) => ("authorized user", format!("in {}", user.file.display())),
            Adc::External(ext) => ("external account", format!("in {}", ext.file.display())),
            Adc::Impersonated(imp) => ("impersonated service account", format!("in {}", imp.file.display())),
            Adc::Metadata(server) => ("metadata server", format!("at {}", server.host)),
        };
        format!("Google ({kind} {place})")
    }
}

/// A credentials file's kind and fields.
pub fn parse(text: &[u8], file: &Path) -> Result<Adc, AuthError> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| error(format!("the credentials file {} is not JSON: {e}", file.display())))?;
    parse_fields(&Fields { value: &value, file })
}

/// The kind named by the `type` of `fields` (a file, or an impersonation's source).
pub fn parse_fields(fields: &Fields) -> Result<Adc, AuthError> {
    match fields.required("type")? {
        "service_account" => ServiceAccount::from_fields(fields).map(Adc::ServiceAccount),
        "authorized_user" => AuthorizedUser::from_fields(fields).map(Adc::AuthorizedUser),
        "external_account" => ExternalAccount::from_fields(fields).map(Adc::External),
        "impersonated_service_account" => Impersonated::from_fields(fields).map(Adc::Impersonated),
        other => Err(error(format!(
            "the credentials file {} is of type {other}, which kubectl-ko does not support \
             (service_account, authorized_user, external_account, impersonated_service_account)",
            fields.file.display()
        ))),
    }
}

/// The fields of a credentials file; a missing or mistyped one is an error naming the file
/// and the field (never its value, which may be a key).
pub struct Fields<'a> {
    pub value: &'a Value,
    pub file: &'a Path,
}

impl<'a> Fields<'a> {
    /// A string field that must be there and not be empty.
    pub fn required(&self, name: &str) -> Result<&'a str, AuthError> {
        self.optional(name)?.ok_or_else(|| self.malformed(name, "is missing"))
    }

    /// A string field that may be absent (or empty, which counts as absent).
    pub fn optional(&self, name: &str) -> Result<Option<&'a str>, AuthError> {
        match &self.value[name] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
            _ => Err(self.malformed(name, "is not a string")),
        }
    }

    /// The object in field `name` (`Null` when absent), as fields of the same file.
    pub fn object(&self, name: &str) -> Result<Fields<'a>, AuthError> {
        match &self.value[name] {
            v @ (Value::Null | Value::Object(_)) => Ok(Fields { value: v, file: self.file }),
            _ => Err(self.malformed(name, "is not an object")),
        }
    }

    pub fn malformed(&self, name: &str, problem: &str) -> AuthError {
        error(format!("the credentials file {} is malformed: the field {name} {problem}", self.file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &Path)]) -> AdcSettings {
        let mut settings = AdcSettings::from_env(&Environment::from_pairs(pairs.iter().map(|(k, v)| (*k, *v))));
        settings.metadata = metadata::Detection::none();
        settings
    }

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        path
    }

    const USER: &str = r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#;

    #[test]
    fn the_named_file_then_gclouds_file_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        assert!(settings(&[("HOME", &home)]).find().unwrap().is_none());
        std::fs::create_dir_all(home.join(".config/gcloud")).unwrap();
        let gcloud = write(&home.join(".config/gcloud"), "application_default_credentials.json", USER);
        let found = settings(&[("HOME", &home)]).find().unwrap().unwrap();
        assert_eq!(found.describe(), format!("Google (authorized user in {})", gcloud.display()));
        let other = dir.path().join("sdk");
        std::fs::create_dir_all(&other).unwrap();
        assert!(settings(&[("HOME", &home), ("CLOUDSDK_CONFIG", &other)]).find().unwrap().is_none());
        let named = write(dir.path(), "named.json", &USER.replace("authorized_user", "external_account"));
        let err = settings(&[("HOME", &home), ("GOOGLE_APPLICATION_CREDENTIALS", &named)]).find().unwrap_err();
        assert!(err.to_string().contains("named.json is malformed: the field audience is missing"), "{err}");
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error() {
        let missing = Path::new("/nonexistent/key.json");
        let err = settings(&[("GOOGLE_APPLICATION_CREDENTIALS", missing)]).find().unwrap_err().to_string();
        assert!(err.starts_with("Google: GOOGLE_APPLICATION_CREDENTIALS names /nonexistent/key.json"), "{err}");
    }

    #[test]
    fn malformed_files_name_the_file_and_field_but_no_value() {
        let file = Path::new("/k.json");
        let err = |json: &str| parse(json.as_bytes(), file).err().unwrap().to_string();
        assert!(err("{").starts_with("Google: the credentials file /k.json is not JSON"));
        assert_eq!(err("{}"), "Google: the credentials file /k.json is malformed: the field type is missing");
        let no_secret = r#"{"type":"authorized_user","client_id":"c","client_secret":"hunter2","refresh_token":7}"#;
        let message = err(no_secret);
        assert!(message.ends_with("the field refresh_token is not a string") && !message.contains("hunter2"));
        let other = err(r#"{"type":"gdch_service_account"}"#);
        assert!(other.contains("is of type gdch_service_account, which kubectl-ko does not support"));
    }
}
