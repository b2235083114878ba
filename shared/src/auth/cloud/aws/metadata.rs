//! Credentials the machine hands out: the container credentials endpoint (ECS task roles,
//! EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `..._FULL_URI` with
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`) and EC2's instance metadata service (IMDSv2:
//! a session token, then the role, then its credentials). IMDS is asked only when
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` is set or the machine's DMI vendor is Amazon, so an
//! ordinary machine never waits on a timeout; `AWS_EC2_METADATA_DISABLED=true` turns it off.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::{AwsCredentials, Chain};
use crate::auth::{AuthError, Secret};

/// ECS's fixed credentials host, for `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const ECS_HOST: &str = "http://169.254.170.2";
/// Hosts a plain-HTTP `AWS_CONTAINER_CREDENTIALS_FULL_URI` may name besides loopback (ECS,
/// EKS Pod Identity), as the SDKs allow.
const CONTAINER_HOSTS: &[&str] = &["169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"];
const IMDS: &str = "http://169.254.169.254";
/// Metadata services answer at once or not at all.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// The credential document both endpoints return.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Issued {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

impl Issued {
    fn into_credentials(self, origin: String) -> AwsCredentials {
        AwsCredentials {
            access_key_id: self.access_key_id,
            secret_access_key: Secret::new(self.secret_access_key),
            session_token: self.token.filter(|t| !t.is_empty()).map(Secret::new),
            origin,
        }
    }
}

/// The container credentials endpoint, when one of its variables is set.
pub async fn container(chain: &Chain<'_>) -> Result<Option<AwsCredentials>, AuthError> {
    let env = chain.env;
    let (var, url) = if let Some(relative) = env.trimmed("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", format!("{ECS_HOST}{relative}"))
    } else if let Some(full) = env.trimmed("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full.to_string())
    } else {
        return Ok(None);
    };
    let failed = |detail: String| super::error(format!("container credentials ({var}) failed: {detail}"));
    let parsed = reqwest::Url::parse(&url).map_err(|e| failed(format!("not a URL: {e}")))?;
    if !container_host_allowed(&parsed) {
        return Err(failed("plain HTTP is allowed only to loopback and the ECS and EKS addresses; use https".into()));
    }
    let mut request = chain.http.client(super::PROVIDER)?.get(parsed).timeout(METADATA_TIMEOUT);
    if let Some(token) = authorization_token(chain).map_err(failed)? {
        request = request.header("authorization", token);
    }
    let body = fetch(request).await.map_err(failed)?.ok_or_else(|| failed("404 Not Found".into()))?;
    let issued: Issued = serde_json::from_str(&body).map_err(|e| failed(format!("unexpected answer: {e}")))?;
    Ok(Some(issued.into_credentials(format!("container credentials ({var})"))))
}

fn container_host_allowed(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "https" || (url.scheme() == "http" && (loopback || CONTAINER_HOSTS.contains(&host)))
}

/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read now, it is rotated), else the variable.
fn authorization_token(chain: &Chain<'_>) -> Result<Option<String>, String> {
    if let Some(path) = chain.env.path("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        let token = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}", path.display()))?;
        return Ok(Some(token.trim().to_string()));
    }
    Ok(chain.env.trimmed("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(str::to_string))
}

/// EC2's instance metadata service (IMDSv2), when this may be an EC2 machine.
pub async fn instance(chain: &Chain<'_>) -> Result<Option<AwsCredentials>, AuthError> {
    let disabled = chain.env.trimmed("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let configured = chain.env.trimmed("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    let endpoint = match configured {
        _ if disabled => return Ok(None),
        Some(url) => url.trim_end_matches('/').to_string(),
        None if on_amazon(&chain.dmi_dir) => IMDS.to_string(),
        None => return Ok(None),
    };
    let failed = |detail: String| super::error(format!("EC2 instance metadata at {endpoint} failed: {detail}"));
    let client = chain.http.client(super::PROVIDER)?;
    let token_request = client
        .put(format!("{endpoint}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .timeout(METADATA_TIMEOUT);
    let token = fetch(token_request).await.map_err(failed)?.ok_or_else(|| failed("no session token (404)".into()))?;
    let get = |path: String| {
        client
            .get(format!("{endpoint}{path}"))
            .header("x-aws-ec2-metadata-token", token.trim())
            .timeout(METADATA_TIMEOUT)
    };
    let roles = "/latest/meta-data/iam/security-credentials/";
    let Some(listing) = fetch(get(roles.to_string())).await.map_err(failed)? else { return Ok(None) };
    let Some(role) = listing.lines().map(str::trim).find(|l| !l.is_empty()) else { return Ok(None) };
    let body = fetch(get(format!("{roles}{role}"))).await.map_err(failed)?;
    let body = body.ok_or_else(|| failed(format!("role {role} has no credentials (404)")))?;
    let issued: Issued = serde_json::from_str(&body).map_err(|e| failed(format!("unexpected answer: {e}")))?;
    Ok(Some(issued.into_credentials(format!("EC2 instance metadata (role {role})"))))
}

/// Whether the DMI vendor files say Amazon (EC2 Nitro and bare-metal instances).
fn on_amazon(dmi_dir: &Path) -> bool {
    ["sys_vendor", "board_vendor"]
        .iter()
        .any(|file| std::fs::read_to_string(dmi_dir.join(file)).is_ok_and(|v| v.contains("Amazon")))
}

/// The body of a successful answer, `None` for 404, an error (without the body's secrets:
/// only the status) otherwise.
async fn fetch(request: reqwest::RequestBuilder) -> Result<Option<String>, String> {
    // Without the URL: an ECS relative URI's path is a per-task capability.
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach it: {}", super::super::error_chain(&e.without_url())))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("it answered {status}"));
    }
    response.text().await.map(Some).map_err(|e| format!("reading its answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Environment;

    #[test]
    fn full_uris_must_be_https_or_local() {
        let allowed = |url: &str| container_host_allowed(&reqwest::Url::parse(url).unwrap());
        for ok in [
            "https://creds.example/x",
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "http://169.254.170.23/v1/credentials",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in ["http://creds.example/x", "http://10.0.0.1/x", "ftp://127.0.0.1/x"] {
            assert!(!allowed(bad), "{bad}");
        }
    }

    #[test]
    fn imds_is_asked_only_on_amazon_machines_or_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!on_amazon(dir.path()));
        std::fs::write(dir.path().join("sys_vendor"), "QEMU\n").unwrap();
        assert!(!on_amazon(dir.path()));
        std::fs::write(dir.path().join("board_vendor"), "Amazon EC2\n").unwrap();
        assert!(on_amazon(dir.path()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let run = |pairs: &[(&str, &str)], dmi: &Path| {
            let env = Environment::from_pairs(pairs.iter().copied());
            let http = crate::auth::cloud::CloudHttp::new(&env, &[]);
            let chain = Chain { env: &env, http: &http, fallback_region: "us-east-1", dmi_dir: dmi.to_path_buf() };
            rt.block_on(instance(&chain)).map(|c| c.is_some()).map_err(|e| e.to_string())
        };
        // Disabled: not even on an Amazon machine.
        assert_eq!(run(&[("AWS_EC2_METADATA_DISABLED", "TRUE")], dir.path()), Ok(false));
        // Not Amazon and not configured: nothing is asked.
        let plain = tempfile::tempdir().unwrap();
        assert_eq!(run(&[], plain.path()), Ok(false));
        // Configured but unreachable: an error naming it.
        let err = run(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/")], plain.path()).unwrap_err();
        assert!(err.starts_with("ECR: EC2 instance metadata at http://127.0.0.1:1 failed: cannot reach it"), "{err}");
    }

    #[test]
    fn issued_documents_become_credentials() {
        let body = r#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#;
        let issued: Issued = serde_json::from_str(body).unwrap();
        let found = issued.into_credentials("o".into());
        assert_eq!((found.access_key_id.as_str(), found.session_token.unwrap().expose()), ("ASIA1", "t"));
    }
}
