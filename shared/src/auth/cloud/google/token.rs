//! What every Google credential kind shares: the OAuth 2.0 scope it asks for, form bodies,
//! sending a request to a token service and reading its answer (an access token and its
//! lifetime), and turning a refusal into one line that names the service and its reason.
//! Reasons come from the service's error fields (`error`, `error_description`, or a Google API
//! `error.status`/`error.message`); no request body, key or token is ever part of a message.

use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::auth::{AuthError, Secret};

/// The name every error of this source starts with.
pub const PROVIDER: &str = "Google";

/// The scope ADC asks for: the one gcloud and ko use for Artifact Registry and GCR.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The longest part of an unexpected answer quoted in a message.
const QUOTED: usize = 200;

/// An access token for the registry and when it stops working (`None`: not said).
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: Option<SystemTime>,
}

/// `Google: {detail}`.
pub fn error(detail: impl Into<String>) -> AuthError {
    AuthError::Cloud { provider: PROVIDER, detail: detail.into() }
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    // What is left unencoded is what RFC 3986 calls unreserved.
    const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let pair = |(k, v): &(&str, &str)| format!("{}={}", utf8_percent_encode(k, FORM), utf8_percent_encode(v, FORM));
    pairs.iter().map(pair).collect::<Vec<_>>().join("&")
}

/// A request ready to send with a form body.
pub fn form_post(client: &reqwest::Client, url: &str, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    client.post(url).header("Content-Type", "application/x-www-form-urlencoded").body(form(pairs))
}

/// Sends `request` to `url` and returns its JSON answer. A refusal is `{refused}: {reason}`,
/// for example `the token service at https://oauth2.googleapis.com/token refused the service
/// account a@b.iam.gserviceaccount.com: invalid_grant: Invalid JWT Signature. (HTTP 400)`.
pub async fn send(request: reqwest::RequestBuilder, url: &str, refused: &str) -> Result<Value, AuthError> {
    let response = request.send().await.map_err(|e| network(url, "could not reach", e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| network(url, "reading the answer of", e))?;
    if !status.is_success() {
        return Err(error(format!("{refused}: {}", reason(status.as_u16(), &body))));
    }
    serde_json::from_slice(&body)
        .map_err(|_| error(format!("{url} answered HTTP {status} with something that is not JSON: {}", quote(&body))))
}

/// `Google: could not reach {url}: {cause}` (the cause without the URL again).
pub fn network(url: &str, what: &str, e: reqwest::Error) -> AuthError {
    error(format!("{what} {url}: {}", super::super::error_chain(&e.without_url())))
}

/// The OAuth 2.0 token answer: `access_token` and `expires_in` (seconds).
pub fn access_token(answer: &Value, url: &str) -> Result<AccessToken, AuthError> {
    let token = answer["access_token"].as_str().filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| error(format!("the answer of {url} has no access_token")))?;
    let expires_at = answer["expires_in"].as_u64().map(|s| SystemTime::now() + Duration::from_secs(s));
    Ok(AccessToken { token: Secret::new(token), expires_at })
}

/// Why a service said no, from its error fields, with the HTTP status.
fn reason(status: u16, body: &[u8]) -> String {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return format!("HTTP {status}: {}", quote(body));
    };
    let error = &answer["error"];
    let (code, text) = match error.as_str() {
        Some(code) => (code, answer["error_description"].as_str()),
        // Google APIs: {"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}
        None => (error["status"].as_str().unwrap_or("error"), error["message"].as_str()),
    };
    match text.filter(|t| !t.is_empty()) {
        Some(text) => format!("{code}: {} (HTTP {status})", one_line(text)),
        None if error.is_null() => format!("HTTP {status}: {}", quote(body)),
        None => format!("{code} (HTTP {status})"),
    }
}

/// The start of an answer, on one line.
fn quote(body: &[u8]) -> String {
    let text = one_line(&String::from_utf8_lossy(body));
    if text.is_empty() {
        return "(empty)".to_string();
    }
    match text.char_indices().nth(QUOTED) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_encode_everything_but_unreserved_characters() {
        let body = form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("a b", "x+y/z~")]);
        assert_eq!(body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&a%20b=x%2By%2Fz~");
    }

    #[test]
    fn refusals_give_the_service_reason() {
        let oauth = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(reason(400, oauth), "invalid_grant: Invalid JWT Signature. (HTTP 400)");
        let api = br#"{"error":{"code":403,"message":"Permission denied.","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(reason(403, api), "PERMISSION_DENIED: Permission denied. (HTTP 403)");
        assert_eq!(reason(401, br#"{"error":"unauthorized_client"}"#), "unauthorized_client (HTTP 401)");
        assert_eq!(reason(502, b"<html>\n bad gateway </html>"), "HTTP 502: <html> bad gateway </html>");
        assert_eq!(reason(500, b""), "HTTP 500: (empty)");
        assert!(reason(500, "x".repeat(1000).as_bytes()).ends_with("x..."));
    }

    #[test]
    fn token_answers_give_the_token_and_its_expiry() {
        let answer = serde_json::json!({"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"});
        let token = access_token(&answer, "u").unwrap();
        assert_eq!(token.token.expose(), "ya29.x");
        let left = token.expires_at.unwrap().duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3599));
        let missing = access_token(&serde_json::json!({"expires_in": 1}), "https://t.example/token");
        assert_eq!(
            missing.err().unwrap().to_string(),
            "Google: the answer of https://t.example/token has no access_token"
        );
    }
}
