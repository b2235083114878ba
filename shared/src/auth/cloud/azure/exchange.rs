//! ACR's token exchange: `POST https://<registry>/oauth2/exchange` with an Entra ID access
//! token (`grant_type=access_token`) answers an ACR refresh token, the password `az acr login`
//! hands Docker. The refresh token is a JWT; its `exp` says how long it may be kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::super::error_chain;
use super::super::host_name;
use super::{failed, form, summary};
use crate::auth::{AuthError, Secret};

/// Exchanges `access_token` (Entra ID, for `tenant`) at `registry` (`host[:port]`) for a
/// refresh token.
pub async fn refresh_token(
    client: &reqwest::Client,
    registry: &str,
    tenant: &str,
    access_token: &Secret,
) -> Result<Secret, AuthError> {
    let request = client
        .post(format!("https://{registry}/oauth2/exchange"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(exchange_form(registry, tenant, access_token));
    let unreachable =
        |e: reqwest::Error| failed(format!("could not reach {registry} for the token exchange: {}", error_chain(&e)));
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        let why = refusal(&body, access_token.expose());
        return Err(failed(format!("{registry} refused the token exchange: {status}{why}")));
    }
    parse_refresh_token(&body)
        .ok_or_else(|| failed(format!("{registry} answered the token exchange without a refresh token")))
}

/// The exchange's form; `service` is the registry's host name, without a port.
fn exchange_form(registry: &str, tenant: &str, access_token: &Secret) -> String {
    form(&[
        ("grant_type", "access_token"),
        ("service", host_name(registry)),
        ("tenant", tenant),
        ("access_token", access_token.expose()),
    ])
}

/// `{"refresh_token": "..."}`.
fn parse_refresh_token(body: &[u8]) -> Option<Secret> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get("refresh_token")?.as_str().filter(|t| !t.is_empty()).map(Secret::new)
}

/// `: <why>` from a refusal: the registry's `errors` (`code: message`), an OAuth2 `error`
/// (`error_description`), else the body's first line; nothing when the body is empty.
fn refusal(body: &[u8], access_token: &str) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |value: &serde_json::Value, key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let why = if let Some(first) = json.get("errors").and_then(|e| e.get(0)) {
        [text(first, "code"), text(first, "message")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ")
    } else if json.get("error").is_some() {
        let description = text(&json, "error_description");
        if description.is_empty() { text(&json, "error") } else { description }
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let why = summary(&why, &[access_token]);
    if why.is_empty() { why } else { format!(": {why}") }
}

/// When a refresh token expires: its JWT `exp`, when it has one.
pub fn expiry(refresh_token: &Secret) -> Option<SystemTime> {
    let payload = refresh_token.expose().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(claims.get("exp")?.as_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_the_host_without_its_port() {
        let form = exchange_form("kotest.azurecr.io:5443", "contoso", &Secret::new("eyJ0.a+b"));
        assert_eq!(form, "grant_type=access_token&service=kotest.azurecr.io&tenant=contoso&access_token=eyJ0.a%2Bb");
    }

    #[test]
    fn answers_hold_a_refresh_token() {
        let token = parse_refresh_token(br#"{"refresh_token":"eyJr.x.y"}"#).unwrap();
        assert_eq!(token.expose(), "eyJr.x.y");
        for body in [&br#"{"refresh_token":""}"#[..], br#"{"access_token":"a"}"#, b"<html>", b""] {
            assert!(parse_refresh_token(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn refusals_are_summarised_without_the_token() {
        let acr = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit https://aka.ms/acr/authorization for more information."}]}"#;
        let why = "UNAUTHORIZED: authentication required, visit https://aka.ms/acr/authorization for more information.";
        let token = "eyJ0eXAi.e30.c2ln";
        assert_eq!(refusal(acr, token), format!(": {why}"));
        let oauth = br#"{"error":"invalid_grant","error_description":"bad token eyJ0eXAi.e30.c2ln\nmore"}"#;
        assert_eq!(refusal(oauth, token), ": bad token ***");
        assert_eq!(refusal(br#"{"error":"invalid_request"}"#, token), ": invalid_request");
        assert_eq!(refusal(b"404 page not found\n", token), ": 404 page not found");
        assert_eq!(refusal(b"", token), "");
    }

    #[test]
    fn a_refresh_token_expires_at_its_exp() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"jti":"x","exp":1900000000,"grant_type":"refresh_token"}"#);
        let token = Secret::new(format!("eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln"));
        assert_eq!(expiry(&token), Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)));
        assert_eq!(expiry(&Secret::new("opaque")), None);
        assert_eq!(expiry(&Secret::new("a.!!.c")), None);
        assert_eq!(expiry(&Secret::new(format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"{}")))), None);
    }
}
