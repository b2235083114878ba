//! The Entra ID (Azure AD) access token that ACR's exchange takes: the OAuth2 client
//! credentials grant at `<AZURE_AUTHORITY_HOST>/<tenant>/oauth2/v2.0/token`, the client proving
//! itself with `AZURE_CLIENT_SECRET` or with the federated token in
//! `AZURE_FEDERATED_TOKEN_FILE` (AKS workload identity; the file is re-read for each token,
//! since Kubernetes rotates it). Managed identity (IMDS) and the Azure CLI's login are not
//! sources here.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::super::error_chain;
use super::{encode, failed, form, summary};
use crate::auth::{AuthError, Secret};
use crate::settings::Environment;

/// The audience asked for. ACR takes tokens for Azure Resource Manager and for ACR itself; a
/// registry may be set to refuse ARM tokens (`az acr config authentication-as-arm`), never ACR
/// ones, and ACR's audience serves every cloud (Azure SDKs' `containerregistry` default).
const SCOPE: &str = "https://containerregistry.azure.net/.default";

/// Entra ID of the public cloud; sovereign clouds set `AZURE_AUTHORITY_HOST`, as for every
/// Azure SDK (AKS's workload identity webhook sets it in pods).
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";

/// RFC 7523's client assertion type, for a federated token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proves who it is.
#[derive(Debug)]
enum ClientCredential {
    Secret(Secret),
    FederatedTokenFile(PathBuf),
}

/// A service principal or workload identity in a tenant, from the environment.
#[derive(Debug)]
pub struct Entra {
    authority: String,
    client_id: String,
    tenant: String,
    credential: ClientCredential,
}

/// An access token and when it expires (`expires_in`, when Entra said).
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: Option<SystemTime>,
}

impl Entra {
    /// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_CLIENT_SECRET` (preferred, as Azure
    /// SDKs' environment credential does) or `AZURE_FEDERATED_TOKEN_FILE`; `None` when any is
    /// missing. Blank is unset.
    pub fn from_env(env: &Environment) -> Option<Entra> {
        let client_id = env.trimmed("AZURE_CLIENT_ID")?.to_string();
        let tenant = env.trimmed("AZURE_TENANT_ID")?.to_string();
        let credential = match (env.trimmed("AZURE_CLIENT_SECRET"), env.trimmed("AZURE_FEDERATED_TOKEN_FILE")) {
            (Some(secret), _) => ClientCredential::Secret(Secret::new(secret)),
            (None, Some(file)) => ClientCredential::FederatedTokenFile(PathBuf::from(file)),
            (None, None) => return None,
        };
        let authority = env.trimmed("AZURE_AUTHORITY_HOST").unwrap_or(DEFAULT_AUTHORITY).to_string();
        Some(Entra { authority, client_id, tenant, credential })
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Where the credential came from, for `-v` and errors: `AZURE_CLIENT_SECRET of client <id>`.
    pub fn describe(&self) -> String {
        let var = match &self.credential {
            ClientCredential::Secret(_) => "AZURE_CLIENT_SECRET".to_string(),
            ClientCredential::FederatedTokenFile(file) => format!("AZURE_FEDERATED_TOKEN_FILE {}", file.display()),
        };
        format!("{var} of client {}", self.client_id)
    }

    /// A new access token for ACR.
    pub async fn token(&self, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
        let url = self.token_url().map_err(failed)?;
        let proof = self.proof()?;
        let request = client
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(self.form(&proof));
        let unreachable = |e: reqwest::Error| {
            failed(format!("could not reach Entra ID at {}: {}", self.authority_shown(), error_chain(&e)))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        self.answer(status, &body, proof.expose()).map_err(failed)
    }

    /// The authority as errors show it, without the trailing slash.
    fn authority_shown(&self) -> &str {
        self.authority.trim_end_matches('/')
    }

    /// `<authority>/<tenant>/oauth2/v2.0/token`. The authority must be HTTPS (a bare host
    /// means HTTPS), or plain HTTP on a loopback address (a local test authority).
    fn token_url(&self) -> Result<String, String> {
        let raw = &self.authority;
        let with_scheme = if raw.contains("://") { raw.clone() } else { format!("https://{raw}") };
        let url = reqwest::Url::parse(&with_scheme)
            .map_err(|e| format!("AZURE_AUTHORITY_HOST {raw} is not a URL ({e}); fix or unset it"))?;
        let loopback = url.host_str().is_some_and(is_loopback);
        if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
            return Err(format!("AZURE_AUTHORITY_HOST {raw} is not an https URL; fix or unset it"));
        }
        Ok(format!("{}/{}/oauth2/v2.0/token", url.as_str().trim_end_matches('/'), encode(&self.tenant)))
    }

    /// The client secret, or the federated token as the file holds it now.
    fn proof(&self) -> Result<Secret, AuthError> {
        match &self.credential {
            ClientCredential::Secret(secret) => Ok(secret.clone()),
            ClientCredential::FederatedTokenFile(file) => {
                let what = format!("AZURE_FEDERATED_TOKEN_FILE {}", file.display());
                let text = std::fs::read_to_string(file).map_err(|e| failed(format!("reading {what}: {e}")))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(failed(format!("{what} is empty")));
                }
                Ok(Secret::new(token))
            }
        }
    }

    /// The client credentials grant's form.
    fn form(&self, proof: &Secret) -> String {
        let mut pairs = vec![("grant_type", "client_credentials"), ("client_id", &self.client_id), ("scope", SCOPE)];
        match self.credential {
            ClientCredential::Secret(_) => pairs.push(("client_secret", proof.expose())),
            ClientCredential::FederatedTokenFile(_) => {
                pairs.extend([("client_assertion_type", JWT_BEARER), ("client_assertion", proof.expose())])
            }
        }
        form(&pairs)
    }

    /// The token from Entra's answer, or what went wrong (without `proof` in it).
    fn answer(&self, status: StatusCode, body: &[u8], proof: &str) -> Result<AccessToken, String> {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
        if let Some(error) = text("error").or(text("error_description")).filter(|_| !status.is_success()) {
            let cause = summary(text("error_description").unwrap_or(error), &[proof]);
            let (authority, client, tenant) = (self.authority_shown(), &self.client_id, &self.tenant);
            return Err(format!("Entra ID at {authority} refused client {client} in tenant {tenant}: {cause}"));
        }
        let authority = self.authority_shown();
        match (status.is_success(), text("access_token")) {
            (true, Some(token)) => Ok(AccessToken { token: Secret::new(token), expires_at: expires_at(&json) }),
            (true, None) => Err(format!("Entra ID at {authority} answered without an access token")),
            (false, _) => match summary(&String::from_utf8_lossy(body), &[proof]) {
                shown if shown.is_empty() => Err(format!("Entra ID at {authority} answered {status}")),
                shown => Err(format!("Entra ID at {authority} answered {status}: {shown}")),
            },
        }
    }
}

/// `expires_in` (seconds; a number, or a string as older endpoints send it) from now.
fn expires_at(json: &serde_json::Value) -> Option<SystemTime> {
    let field = json.get("expires_in")?;
    let seconds = field.as_u64().or_else(|| field.as_str()?.trim().parse().ok())?;
    SystemTime::now().checked_add(Duration::from_secs(seconds))
}

fn is_loopback(host: &str) -> bool {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || ip.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entra(pairs: &[(&str, &str)]) -> Entra {
        let mut all = vec![("AZURE_CLIENT_ID", "app-1"), ("AZURE_TENANT_ID", "contoso.onmicrosoft.com")];
        all.extend_from_slice(pairs);
        Entra::from_env(&Environment::from_pairs(all)).expect("configured")
    }

    #[test]
    fn the_token_url_is_under_the_authority_and_tenant() {
        let url =
            |authority: &str| entra(&[("AZURE_CLIENT_SECRET", "s"), ("AZURE_AUTHORITY_HOST", authority)]).token_url();
        let public = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        assert_eq!(entra(&[("AZURE_CLIENT_SECRET", "s")]).token_url().unwrap(), public);
        assert_eq!(url("https://login.microsoftonline.com").unwrap(), public);
        assert_eq!(url("login.microsoftonline.com").unwrap(), public);
        let china = "https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/v2.0/token";
        assert_eq!(url("https://login.chinacloudapi.cn/").unwrap(), china);
        let local = "http://127.0.0.1:8080/contoso.onmicrosoft.com/oauth2/v2.0/token";
        assert_eq!(url("http://127.0.0.1:8080/").unwrap(), local);
        assert!(url("http://login.example/").unwrap_err().contains("is not an https URL"));
        assert!(url("https://").unwrap_err().contains("AZURE_AUTHORITY_HOST https:// is not a URL"));
        let odd = entra(&[("AZURE_CLIENT_SECRET", "s"), ("AZURE_TENANT_ID", "a/b c")]);
        assert!(odd.token_url().unwrap().ends_with("/a%2Fb%20c/oauth2/v2.0/token"));
    }

    #[test]
    fn a_secret_wins_over_a_federated_token_file() {
        let both = entra(&[("AZURE_CLIENT_SECRET", "s"), ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")]);
        assert_eq!(both.describe(), "AZURE_CLIENT_SECRET of client app-1");
        let file = entra(&[("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")]);
        assert_eq!(file.describe(), "AZURE_FEDERATED_TOKEN_FILE /var/run/token of client app-1");
    }

    #[test]
    fn the_form_carries_the_secret_or_the_assertion() {
        let secret = entra(&[("AZURE_CLIENT_SECRET", "p@ss word")]);
        let scope = "scope=https%3A%2F%2Fcontainerregistry.azure.net%2F.default";
        let expected = format!("grant_type=client_credentials&client_id=app-1&{scope}&client_secret=p%40ss%20word");
        assert_eq!(secret.form(&secret.proof().unwrap()), expected);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "eyJ.first.sig\n").unwrap();
        let federated = entra(&[("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap())]);
        let assertion = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
        let expected = format!("grant_type=client_credentials&client_id=app-1&{scope}&{assertion}");
        assert_eq!(federated.form(&federated.proof().unwrap()), format!("{expected}&client_assertion=eyJ.first.sig"));
        std::fs::write(&file, "eyJ.rotated.sig").unwrap();
        assert_eq!(federated.proof().unwrap().expose(), "eyJ.rotated.sig", "re-read for each token");
    }

    #[test]
    fn unreadable_or_empty_token_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = entra(&[("AZURE_FEDERATED_TOKEN_FILE", missing.to_str().unwrap())]).proof().unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!("ACR: reading AZURE_FEDERATED_TOKEN_FILE {}: ", missing.display())),
            "{shown}"
        );
        std::fs::write(&missing, " \n").unwrap();
        let error = entra(&[("AZURE_FEDERATED_TOKEN_FILE", missing.to_str().unwrap())]).proof().unwrap_err();
        assert!(error.to_string().ends_with("is empty"), "{error}");
    }

    #[test]
    fn answers_give_a_token_and_its_expiry() {
        let e = entra(&[("AZURE_CLIENT_SECRET", "s")]);
        let body = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0"}"#;
        let token = e.answer(StatusCode::OK, body, "s").unwrap();
        assert_eq!(token.token.expose(), "eyJ0");
        let left = token.expires_at.unwrap().duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3599), "{left:?}");
        let old = e.answer(StatusCode::OK, br#"{"expires_in":"60","access_token":"t"}"#, "s").unwrap();
        assert!(old.expires_at.is_some());
        let shown = e.answer(StatusCode::OK, br#"{"token_type":"Bearer"}"#, "s").err().unwrap();
        assert_eq!(shown, "Entra ID at https://login.microsoftonline.com answered without an access token");
    }

    #[test]
    fn refusals_quote_the_first_line_of_the_description_and_no_secret() {
        let e = entra(&[("AZURE_CLIENT_SECRET", "hunter2")]);
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided (hunter2).\r\nTrace ID: 1\r\nCorrelation ID: 2"}"#;
        let shown = e.answer(StatusCode::UNAUTHORIZED, body, "hunter2").err().unwrap();
        let expected = "Entra ID at https://login.microsoftonline.com refused client app-1 in tenant \
                        contoso.onmicrosoft.com: AADSTS7000215: Invalid client secret provided (***).";
        assert_eq!(shown, expected);
        let bare = e.answer(StatusCode::BAD_REQUEST, br#"{"error":"invalid_request"}"#, "hunter2").err().unwrap();
        assert!(bare.ends_with("in tenant contoso.onmicrosoft.com: invalid_request"), "{bare}");
        let gateway = e.answer(StatusCode::BAD_GATEWAY, b"<html>upstream\n</html>", "hunter2").err().unwrap();
        assert_eq!(gateway, "Entra ID at https://login.microsoftonline.com answered 502 Bad Gateway: <html>upstream");
        let empty = e.answer(StatusCode::SERVICE_UNAVAILABLE, b"", "hunter2").err().unwrap();
        assert_eq!(empty, "Entra ID at https://login.microsoftonline.com answered 503 Service Unavailable");
    }
}
