//! Web identity: a token file (EKS's projected service-account token, a CI system's OIDC
//! token) exchanged for temporary credentials with STS `AssumeRoleWithWebIdentity`, an
//! unsigned query-protocol POST whose XML answer is read field by field (no XML crate for
//! four elements). Endpoint: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else
//! `https://sts.<region>.amazonaws.com`.

use std::path::PathBuf;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::credentials::{AwsCredentials, Chain};
use super::profile::Profile;
use crate::auth::{AuthError, Secret};

/// Form encoding: everything but RFC 3986's unreserved characters.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One `AssumeRoleWithWebIdentity` call.
pub struct WebIdentity {
    pub role_arn: String,
    pub token_file: PathBuf,
    pub session_name: Option<String>,
    pub region: String,
    /// How the resulting credentials are described.
    pub origin: String,
}

/// `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN` (and `AWS_ROLE_SESSION_NAME`).
/// STS is asked in the region of the variables, else of `profile`, else of the registry.
pub async fn from_environment(
    chain: &Chain<'_>,
    profile: Option<&Profile>,
) -> Result<Option<AwsCredentials>, AuthError> {
    let Some(token_file) = chain.env.path("AWS_WEB_IDENTITY_TOKEN_FILE") else { return Ok(None) };
    let Some(role_arn) = chain.env.trimmed("AWS_ROLE_ARN") else {
        return Err(super::error("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; set both or neither"));
    };
    let request = WebIdentity {
        role_arn: role_arn.to_string(),
        token_file,
        session_name: chain.env.trimmed("AWS_ROLE_SESSION_NAME").map(str::to_string),
        region: chain.region(profile),
        origin: format!("AWS_WEB_IDENTITY_TOKEN_FILE, role {role_arn}"),
    };
    assume_role_with_web_identity(chain, &request).await.map(Some)
}

pub async fn assume_role_with_web_identity(
    chain: &Chain<'_>,
    request: &WebIdentity,
) -> Result<AwsCredentials, AuthError> {
    let failed =
        |detail: String| super::error(format!("AssumeRoleWithWebIdentity for {} failed: {detail}", request.role_arn));
    let token = std::fs::read_to_string(&request.token_file)
        .map_err(|e| failed(format!("reading the web identity token file {}: {e}", request.token_file.display())))?;
    let endpoint = endpoint(chain, &request.region);
    let session = request.session_name.clone().unwrap_or_else(|| format!("kubectl-ko-{}", crate::time::now_unix()));
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", &request.role_arn),
        ("RoleSessionName", &session),
        ("WebIdentityToken", token.trim()),
    ];
    let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, FORM))).collect();
    let client = chain.http.client(super::PROVIDER)?;
    let response = client
        .post(&endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/xml")
        .body(body.join("&"))
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach {endpoint}: {}", super::super::error_chain(&e))))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| failed(format!("reading the answer of {endpoint}: {e}")))?;
    if !status.is_success() {
        return Err(failed(format!("{endpoint} answered {status}: {}", sts_error(&text))));
    }
    parse_credentials(&text, &request.origin).ok_or_else(|| failed(format!("{endpoint} answered without credentials")))
}

/// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, else the regional endpoint.
fn endpoint(chain: &Chain<'_>, region: &str) -> String {
    let configured = chain.env.trimmed("AWS_ENDPOINT_URL_STS").or_else(|| chain.env.trimmed("AWS_ENDPOINT_URL"));
    configured.map(str::to_string).unwrap_or_else(|| {
        let suffix = if region.starts_with("cn-") { ".cn" } else { "" };
        format!("https://sts.{region}.amazonaws.com{suffix}")
    })
}

fn parse_credentials(xml: &str, origin: &str) -> Option<AwsCredentials> {
    let credentials = element(xml, "Credentials")?;
    Some(AwsCredentials {
        access_key_id: element(credentials, "AccessKeyId").map(unescape)?,
        secret_access_key: Secret::new(unescape(element(credentials, "SecretAccessKey")?)),
        session_token: element(credentials, "SessionToken").map(|t| Secret::new(unescape(t))),
        origin: origin.to_string(),
    })
}

/// `Code: Message` of an STS `<ErrorResponse>`, else the start of the answer.
fn sts_error(xml: &str) -> String {
    xml_error(xml).map(|(code, message)| format!("{code}: {message}")).unwrap_or_else(|| super::excerpt(xml))
}

/// The `<Code>` and `<Message>` of an AWS XML error answer.
pub fn xml_error(xml: &str) -> Option<(String, String)> {
    let code = unescape(element(xml, "Code")?);
    Some((code, element(xml, "Message").map(unescape).unwrap_or_default()))
}

/// The text between `<tag>` (or `<tag attr...>`) and `</tag>`.
fn element<'x>(xml: &'x str, tag: &str) -> Option<&'x str> {
    let open = format!("<{tag}");
    let mut from = 0;
    let start = loop {
        let at = from + xml[from..].find(&open)?;
        let after = &xml[at + open.len()..];
        match after.chars().next() {
            Some('>') => break at + open.len() + 1,
            Some(' ') => break at + open.len() + after.find('>')? + 1,
            _ => from = at + open.len(),
        }
    };
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

fn unescape(text: &str) -> String {
    text.trim()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example answer, shortened.
    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn credentials_are_read_from_the_xml() {
        let found = parse_credentials(ANSWER, "o").unwrap();
        assert_eq!(found.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
        assert_eq!(found.secret_access_key.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
        assert_eq!(found.session_token.unwrap().expose(), "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE");
        assert!(parse_credentials("<x/>", "o").is_none());
    }

    #[test]
    fn errors_show_code_and_message() {
        let xml = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Couldn&apos;t retrieve keys &amp; more</Message></Error></ErrorResponse>"#;
        assert_eq!(sts_error(xml), "InvalidIdentityToken: Couldn't retrieve keys & more");
        assert_eq!(element("<a x=\"1\">v</a><ab>w</ab>", "ab"), Some("w"));
        assert_eq!(element("<ab>w</ab><a x=\"1\">v</a>", "a"), Some("v"));
    }

    #[test]
    fn the_endpoint_is_the_variables_then_the_region() {
        let env = crate::settings::Environment::from_pairs([("AWS_ENDPOINT_URL", "http://a")]);
        let http = crate::auth::cloud::CloudHttp::new(&env, &[]);
        assert_eq!(endpoint(&Chain::new(&env, &http, "x"), "us-east-1"), "http://a");
        let env = crate::settings::Environment::from_pairs([
            ("AWS_ENDPOINT_URL", "http://a"),
            ("AWS_ENDPOINT_URL_STS", "http://s"),
        ]);
        assert_eq!(endpoint(&Chain::new(&env, &http, "x"), "us-east-1"), "http://s");
        let env = crate::settings::Environment::default();
        assert_eq!(endpoint(&Chain::new(&env, &http, "x"), "cn-north-1"), "https://sts.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn a_missing_token_file_is_named() {
        let env = crate::settings::Environment::from_pairs([("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")]);
        let http = crate::auth::cloud::CloudHttp::new(&env, &[]);
        let chain = Chain::new(&env, &http, "us-east-1");
        let request = WebIdentity {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            token_file: "/nonexistent/token".into(),
            session_name: None,
            region: "us-east-1".into(),
            origin: "o".into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(assume_role_with_web_identity(&chain, &request)).unwrap_err().to_string();
        assert!(err.starts_with("ECR: AssumeRoleWithWebIdentity for arn:aws:iam::123456789012:role/r failed: reading the web identity token file /nonexistent/token:"), "{err}");
    }
}
