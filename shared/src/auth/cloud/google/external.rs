//! An external account (`"type": "external_account"`: workload identity federation, as on
//! GitHub Actions, EKS or AKS): a subject token from `credential_source` (a file, or a URL
//! with headers; text or JSON with `subject_token_field_name`) exchanged at the Security
//! Token Service (`token_url`, RFC 8693), then, when the file has a
//! `service_account_impersonation_url`, IAM Credentials' `generateAccessToken` with that token.
//! Executable and AWS sources are not supported and say so.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::adc::Fields;
use super::impersonate::{self, DEFAULT_LIFETIME};
use super::token::{self, AccessToken, SCOPE, error};
use crate::auth::{AuthError, Secret};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

#[derive(Debug)]
pub struct ExternalAccount {
    pub file: PathBuf,
    audience: String,
    subject_token_type: String,
    token_url: String,
    source: SubjectSource,
    /// A field of a JSON subject token; `None`: the token is the whole text.
    json_field: Option<String>,
    client: Option<(String, Secret)>,
    user_project: Option<String>,
    impersonation_url: Option<String>,
    lifetime: u64,
}

#[derive(Debug)]
enum SubjectSource {
    File(PathBuf),
    Url { url: String, headers: Vec<(String, String)> },
}

impl ExternalAccount {
    pub fn from_fields(fields: &Fields) -> Result<ExternalAccount, AuthError> {
        let source = fields.object("credential_source")?;
        let client = match fields.optional("client_id")? {
            Some(id) => Some((id.to_string(), Secret::new(fields.optional("client_secret")?.unwrap_or_default()))),
            None => None,
        };
        let lifetime = fields.value["service_account_impersonation"]["token_lifetime_seconds"].as_u64();
        Ok(ExternalAccount {
            file: fields.file.to_path_buf(),
            audience: fields.required("audience")?.to_string(),
            subject_token_type: fields.required("subject_token_type")?.to_string(),
            token_url: fields.required("token_url")?.to_string(),
            json_field: json_field(&source)?,
            source: subject_source(&source)?,
            client,
            user_project: fields.optional("workforce_pool_user_project")?.map(str::to_string),
            impersonation_url: fields.optional("service_account_impersonation_url")?.map(str::to_string),
            lifetime: lifetime.unwrap_or(DEFAULT_LIFETIME),
        })
    }

    /// The federated token, impersonating the service account when the file names one.
    pub async fn fetch(&self, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
        let subject = self.subject_token(client).await?;
        let federated = self.exchange(client, &subject).await?;
        match &self.impersonation_url {
            Some(url) => impersonate::generate_access_token(client, url, &federated.token, self.lifetime, &[]).await,
            None => Ok(federated),
        }
    }

    async fn subject_token(&self, client: &reqwest::Client) -> Result<Secret, AuthError> {
        let (text, from) = match &self.source {
            SubjectSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| error(format!("reading the subject token {}: {e}", path.display())))?;
                (text, path.display().to_string())
            }
            SubjectSource::Url { url, headers } => {
                let request = headers.iter().fold(client.get(url), |r, (k, v)| r.header(k, v));
                let refused = format!("the subject token URL {url} refused the request");
                (fetch_text(request, url, &refused).await?, url.clone())
            }
        };
        let token = match &self.json_field {
            None => Some(text.trim().to_string()),
            Some(field) => serde_json::from_str::<Value>(&text).ok().and_then(|v| Some(v[field].as_str()?.to_string())),
        };
        let missing = || match &self.json_field {
            Some(field) => error(format!("the subject token from {from} is not JSON with a string field {field}")),
            None => error(format!("the subject token from {from} is empty")),
        };
        token.filter(|t| !t.is_empty()).map(Secret::new).ok_or_else(missing)
    }

    /// The Security Token Service's token for the subject token.
    async fn exchange(&self, client: &reqwest::Client, subject: &Secret) -> Result<AccessToken, AuthError> {
        let options = json!({"userProject": self.user_project}).to_string();
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("audience", &self.audience),
            ("scope", SCOPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token", subject.expose()),
            ("subject_token_type", &self.subject_token_type),
        ];
        if self.user_project.is_some() && self.client.is_none() {
            form.push(("options", &options));
        }
        let mut request = token::form_post(client, &self.token_url, &form);
        if let Some((id, secret)) = &self.client {
            request = request.basic_auth(id, Some(secret.expose()));
        }
        let refused = format!(
            "the security token service at {} refused the subject token of {} (audience {})",
            self.token_url,
            self.file.display(),
            self.audience
        );
        let answer = token::send(request, &self.token_url, &refused).await?;
        token::access_token(&answer, &self.token_url)
    }
}

/// `credential_source.file` or `.url` (with `.headers`).
fn subject_source(source: &Fields) -> Result<SubjectSource, AuthError> {
    if let Some(file) = source.optional("file")? {
        return Ok(SubjectSource::File(PathBuf::from(file)));
    }
    if let Some(url) = source.optional("url")? {
        let headers = source.value["headers"].as_object().into_iter().flatten();
        let headers = headers.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
        return Ok(SubjectSource::Url { url: url.to_string(), headers });
    }
    let kind = ["environment_id", "executable"].into_iter().find(|k| !source.value[*k].is_null());
    Err(match kind {
        Some(kind) => source.malformed(
            &format!("credential_source.{kind}"),
            "is a kind of subject token kubectl-ko does not support (file and url are)",
        ),
        None => source.malformed("credential_source", "has neither file nor url"),
    })
}

/// `credential_source.format`: `{"type": "json", "subject_token_field_name": F}` → `F`.
fn json_field(source: &Fields) -> Result<Option<String>, AuthError> {
    let format = source.object("format")?;
    match format.optional("type")? {
        Some("json") => Ok(Some(format.required("subject_token_field_name")?.to_string())),
        None | Some("text") => Ok(None),
        Some(_) => Err(format.malformed("credential_source.format.type", "is neither text nor json")),
    }
}

/// Reads the text of a URL's answer (a subject token).
async fn fetch_text(request: reqwest::RequestBuilder, url: &str, refused: &str) -> Result<String, AuthError> {
    let response = request.send().await.map_err(|e| token::network(url, "could not reach", e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(error(format!("{refused}: HTTP {status}")));
    }
    response.text().await.map_err(|e| token::network(url, "reading the answer of", e))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn account(json: Value) -> Result<ExternalAccount, AuthError> {
        ExternalAccount::from_fields(&Fields { value: &json, file: Path::new("/wif.json") })
    }

    fn base(source: Value) -> Value {
        json!({
            "type": "external_account", "audience": "//iam.googleapis.com/projects/1/x",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.example/v1/token", "credential_source": source,
        })
    }

    #[test]
    fn files_and_urls_in_text_or_json_are_sources() {
        let file = account(base(json!({"file": "/t"}))).unwrap();
        assert!(matches!(file.source, SubjectSource::File(ref p) if p == Path::new("/t")));
        assert_eq!((file.json_field, file.lifetime), (None, DEFAULT_LIFETIME));
        let url = json!({"url": "http://x/t", "headers": {"Metadata": "True"},
            "format": {"type": "json", "subject_token_field_name": "access_token"}});
        let url = account(base(url)).unwrap();
        assert_eq!(url.json_field.as_deref(), Some("access_token"));
        let SubjectSource::Url { headers, .. } = url.source else { panic!("a url source") };
        assert_eq!(headers, [("Metadata".to_string(), "True".to_string())]);
    }

    #[test]
    fn unsupported_or_incomplete_sources_name_the_field() {
        let err = |source: Value| account(base(source)).err().unwrap().to_string();
        let aws = err(json!({"environment_id": "aws1", "region_url": "http://x"}));
        assert!(aws.contains("/wif.json is malformed: the field credential_source.environment_id is a kind"), "{aws}");
        assert!(err(json!({})).ends_with("the field credential_source has neither file nor url"));
        let no_field = err(json!({"file": "/t", "format": {"type": "json"}}));
        assert!(no_field.ends_with("the field subject_token_field_name is missing"), "{no_field}");
    }
}
