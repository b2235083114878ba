//! Service account impersonation: IAM Credentials' `generateAccessToken`
//! (`POST .../serviceAccounts/EMAIL:generateAccessToken` with a Bearer token of the caller),
//! which external accounts and `impersonated_service_account` files end with. Its answer is
//! `accessToken` and an RFC 3339 `expireTime`.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::token::{self, AccessToken, SCOPE, error};
use crate::auth::{AuthError, Secret};

/// The lifetime asked of an impersonated token when the file does not say (Google's default).
pub const DEFAULT_LIFETIME: u64 = 3600;

/// A token for the service account of `url`, asked for with the caller's `bearer` token,
/// through the `delegates` chain when there is one.
pub async fn generate_access_token(
    client: &reqwest::Client,
    url: &str,
    bearer: &Secret,
    lifetime: u64,
    delegates: &[String],
) -> Result<AccessToken, AuthError> {
    let mut body = json!({"scope": [SCOPE], "lifetime": format!("{lifetime}s")});
    if !delegates.is_empty() {
        body["delegates"] = json!(delegates);
    }
    let request =
        client.post(url).bearer_auth(bearer.expose()).header("Content-Type", "application/json").body(body.to_string());
    let refused = format!("the IAM credentials service at {url} refused the impersonation");
    let answer = token::send(request, url, &refused).await?;
    let token = answer["accessToken"].as_str().filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| error(format!("the answer of {url} has no accessToken")))?;
    let expires_at = answer["expireTime"].as_str().and_then(parse_rfc3339);
    let fallback = SystemTime::now() + Duration::from_secs(lifetime);
    Ok(AccessToken { token: Secret::new(token), expires_at: Some(expires_at.unwrap_or(fallback)) })
}

/// `2026-12-01T04:00:00.5Z` → a time (UTC only, as Google writes it).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split('.').next()?.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + min * 60 + s).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_times_are_read_as_utc() {
        let at = |s: &str| parse_rfc3339(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2014-10-02T15:01:23Z"), Some(1_412_262_083));
        assert_eq!(at("2024-02-29T23:59:59.999999Z"), Some(1_709_251_199));
        assert_eq!(at("2014-10-02T15:01:23+02:00"), None);
        assert_eq!(at("soon"), None);
    }
}
