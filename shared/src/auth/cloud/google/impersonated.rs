//! An `impersonated_service_account` file (what `gcloud auth application-default login
//! --impersonate-service-account` writes): its `source_credentials` (a user, service
//! account or external account) get a token, which impersonates the service account of
//! `service_account_impersonation_url` through the `delegates` chain.

use std::path::PathBuf;

use super::adc::{Adc, Fields, parse_fields};
use super::impersonate::{self, DEFAULT_LIFETIME};
use super::token::AccessToken;
use crate::auth::{AuthError, Secret};

#[derive(Debug)]
pub struct Impersonated {
    pub file: PathBuf,
    /// Never itself impersonated or a metadata server.
    pub source: Box<Adc>,
    url: String,
    /// `projects/-/serviceAccounts/EMAIL`, as the API takes them.
    delegates: Vec<String>,
}

impl Impersonated {
    pub fn from_fields(fields: &Fields) -> Result<Impersonated, AuthError> {
        let url = fields.required("service_account_impersonation_url")?.to_string();
        let source_fields = fields.object("source_credentials")?;
        if source_fields.value.is_null() {
            return Err(fields.malformed("source_credentials", "is missing"));
        }
        let source = parse_fields(&source_fields)?;
        if matches!(source, Adc::Impersonated(_)) {
            return Err(fields.malformed("source_credentials", "is itself an impersonated service account"));
        }
        let delegates = fields.value["delegates"].as_array().into_iter().flatten().filter_map(|d| d.as_str());
        let delegates = delegates.map(|d| qualified(d.trim())).collect();
        Ok(Impersonated { file: fields.file.to_path_buf(), source: Box::new(source), url, delegates })
    }

    /// The impersonated token, asked for with the source credentials' token.
    pub async fn fetch(&self, client: &reqwest::Client, source: &Secret) -> Result<AccessToken, AuthError> {
        impersonate::generate_access_token(client, &self.url, source, DEFAULT_LIFETIME, &self.delegates).await
    }
}

/// `sa@p.iam.gserviceaccount.com` → `projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com`.
fn qualified(delegate: &str) -> String {
    if delegate.starts_with("projects/") {
        delegate.to_string()
    } else {
        format!("projects/-/serviceAccounts/{delegate}")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> Result<Impersonated, AuthError> {
        Impersonated::from_fields(&Fields { value: &value, file: Path::new("/imp.json") })
    }

    #[test]
    fn the_source_and_delegates_are_read() {
        let user = json!({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"});
        let imp = parse(json!({
            "type": "impersonated_service_account", "source_credentials": user,
            "service_account_impersonation_url": "https://iam.example/v1/projects/-/serviceAccounts/a@p:generate",
            "delegates": ["d1@p.iam.gserviceaccount.com", "projects/-/serviceAccounts/d2@p"],
        }))
        .unwrap();
        assert!(matches!(*imp.source, Adc::AuthorizedUser(_)));
        assert_eq!(
            imp.delegates,
            ["projects/-/serviceAccounts/d1@p.iam.gserviceaccount.com", "projects/-/serviceAccounts/d2@p"]
        );
        let inner = json!({"type": "impersonated_service_account", "service_account_impersonation_url": "u",
            "source_credentials": user});
        let nested = parse(json!({"service_account_impersonation_url": "u", "source_credentials": inner}));
        assert!(
            nested.unwrap_err().to_string().ends_with("source_credentials is itself an impersonated service account")
        );
        let missing = parse(json!({"service_account_impersonation_url": "u"})).unwrap_err().to_string();
        assert!(missing.ends_with("the field source_credentials is missing"), "{missing}");
    }
}
