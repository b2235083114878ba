//! `GetAuthorizationToken`: a SigV4-signed JSON call to the registry's ECR API (or ECR
//! Public's, in us-east-1) whose answer is a base64 `AWS:<password>` and its expiry. AWS's
//! error answers (`{"__type": ..., "message": ...}`) become one line naming the region and
//! the cause.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::credentials::AwsCredentials;
use super::host::EcrHost;
use super::sigv4;
use crate::auth::cloud::CloudHttp;
use crate::auth::{AuthError, Secret};
use crate::settings::Environment;

const PRIVATE_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const PUBLIC_TARGET: &str = "SpencerFrontendService.GetAuthorizationToken";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Registry credentials ECR issued (the password never prints).
#[derive(Debug)]
pub struct Token {
    pub username: String,
    pub password: Secret,
    /// When ECR says the token expires (twelve hours after issue).
    pub expires_at: Option<SystemTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationData {
    authorization_token: String,
    expires_at: Option<f64>,
}

/// Asks the registry's ECR API for a token with `credentials`.
pub async fn authorization_token(
    http: &CloudHttp,
    env: &Environment,
    host: &EcrHost,
    credentials: &AwsCredentials,
) -> Result<Token, AuthError> {
    let region = host.region();
    let failed = |detail: String| super::error(format!("GetAuthorizationToken in {region} failed: {detail}"));
    let endpoint = host.endpoint(env);
    let url =
        reqwest::Url::parse(&endpoint).map_err(|e| failed(format!("the endpoint {endpoint} is not a URL: {e}")))?;
    let request = signed_request(http, &url, host, credentials)?;
    let response = request
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach {endpoint}: {}", super::super::error_chain(&e))))?;
    let status = response.status();
    let error_type = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = response.text().await.map_err(|e| failed(format!("reading the answer of {endpoint}: {e}")))?;
    if !status.is_success() {
        return Err(refusal(region, status, error_type.as_deref(), &text));
    }
    parse_token(&text).map_err(|detail| failed(format!("{endpoint} answered {detail}")))
}

/// The `GetAuthorizationToken` POST to `url`, signed for the registry's region.
fn signed_request(
    http: &CloudHttp,
    url: &reqwest::Url,
    host: &EcrHost,
    credentials: &AwsCredentials,
) -> Result<reqwest::RequestBuilder, AuthError> {
    let (target, body) = match host {
        EcrHost::Private { account, .. } => {
            (PRIVATE_TARGET, serde_json::json!({ "registryIds": [account] }).to_string())
        }
        EcrHost::Public => (PUBLIC_TARGET, "{}".to_string()),
    };
    let headers = vec![
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
        ("host".to_string(), host_header(url)),
        ("x-amz-target".to_string(), target.to_string()),
    ];
    let request = sigv4::Request { method: "POST", path: url.path(), query: "", headers, body: body.as_bytes() };
    let scope = sigv4::Scope { region: host.region(), service: host.service() };
    let signed = sigv4::sign(&request, credentials, &scope, &sigv4::amz_date(crate::time::now_unix()));
    let mut builder = http.client(super::PROVIDER)?.post(url.clone()).body(body.clone());
    for (name, value) in request.headers.iter().chain(&signed).filter(|(name, _)| name != "host") {
        builder = builder.header(name, value);
    }
    Ok(builder)
}

/// `host` or `host:port`, as the HTTP client sends it (the default port is left out).
fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The token of a successful answer: `authorizationData` is a list for ECR and one object
/// for ECR Public.
fn parse_token(text: &str) -> Result<Token, String> {
    let answer: Value = serde_json::from_str(text).map_err(|e| format!("with something that is not JSON: {e}"))?;
    let data = match &answer["authorizationData"] {
        Value::Array(list) => list.first().cloned(),
        Value::Object(_) => Some(answer["authorizationData"].clone()),
        _ => None,
    };
    let data: AuthorizationData = data
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("with unexpected authorization data: {e}"))?
        .ok_or("without authorization data")?;
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.authorization_token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or("with an authorization token that is not base64 text")?;
    let (username, password) =
        decoded.split_once(':').ok_or("with an authorization token that is not user:password")?;
    let expires_at = data
        .expires_at
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    Ok(Token { username: username.to_string(), password: Secret::new(password), expires_at })
}

/// The error for a refused call: AWS's error code and message, "denied" when it is about
/// the caller's identity or permissions.
fn refusal(region: &str, status: reqwest::StatusCode, error_type: Option<&str>, text: &str) -> AuthError {
    let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let xml = super::sts::xml_error(text);
    let code = json["__type"].as_str().or(json["code"].as_str()).or(error_type).map(short_code);
    let code = code.or_else(|| xml.as_ref().map(|(code, _)| code.clone()));
    let message = json["message"].as_str().or(json["Message"].as_str());
    let message = message.or(xml.as_ref().map(|(_, message)| message.as_str()).filter(|m| !m.is_empty()));
    let cause = match (&code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        (None, Some(message)) => message.to_string(),
        (None, None) => format!("{status}: {}", super::excerpt(text)),
    };
    let denied = matches!(status.as_u16(), 401 | 403)
        || code.as_deref().is_some_and(|c| {
            ["Denied", "Unrecognized", "Signature", "Expired", "InvalidClientTokenId", "Unauthorized"]
                .iter()
                .any(|word| c.contains(word))
        });
    let verb = if denied { "was denied" } else { "failed" };
    super::error(format!("GetAuthorizationToken in {region} {verb}: {cause}"))
}

/// `com.amazonaws.ecr#AccessDeniedException` or `AccessDeniedException:http://...` →
/// `AccessDeniedException`.
fn short_code(code: &str) -> String {
    let code = code.rsplit('#').next().unwrap_or(code);
    code.split(':').next().unwrap_or(code).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_decoded_for_both_answer_shapes() {
        let private = r#"{"authorizationData":[{"authorizationToken":"QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu","expiresAt":1420070400,"proxyEndpoint":"https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}]}"#;
        let token = parse_token(private).unwrap();
        assert_eq!((token.username.as_str(), token.password.expose()), ("AWS", "123456789012-auth-token"));
        assert_eq!(token.expires_at, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_420_070_400)));
        let public = r#"{"authorizationData":{"authorizationToken":"QVdTOnB3","expiresAt":1.7e9}}"#;
        let token = parse_token(public).unwrap();
        assert_eq!((token.username.as_str(), token.password.expose()), ("AWS", "pw"));
        assert!(parse_token(r#"{"authorizationData":[]}"#).unwrap_err().contains("without authorization data"));
        assert!(parse_token(r#"{"authorizationData":[{"authorizationToken":"!!"}]}"#).is_err());
    }

    #[test]
    fn refusals_name_the_region_code_and_message() {
        let body = r#"{"__type":"com.amazonaws.ecr#AccessDeniedException","message":"User: x is not authorized"}"#;
        let err = refusal("us-east-1", reqwest::StatusCode::BAD_REQUEST, None, body).to_string();
        assert_eq!(
            err,
            "ECR: GetAuthorizationToken in us-east-1 was denied: AccessDeniedException: User: x is not authorized"
        );
        let err = refusal("eu-west-1", reqwest::StatusCode::INTERNAL_SERVER_ERROR, None, "oops").to_string();
        assert_eq!(err, "ECR: GetAuthorizationToken in eu-west-1 failed: 500 Internal Server Error: oops");
        let err = refusal(
            "eu-west-1",
            reqwest::StatusCode::BAD_REQUEST,
            Some("UnrecognizedClientException:http://internal"),
            "",
        )
        .to_string();
        assert_eq!(err, "ECR: GetAuthorizationToken in eu-west-1 was denied: UnrecognizedClientException");
        let xml = "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>Check your key</Message></Error></Errors></ErrorResponse>";
        let err = refusal("us-east-1", reqwest::StatusCode::FORBIDDEN, None, xml).to_string();
        assert_eq!(err, "ECR: GetAuthorizationToken in us-east-1 was denied: SignatureDoesNotMatch: Check your key");
    }

    #[test]
    fn private_and_public_registries_ask_their_own_service() {
        let http = CloudHttp::new(&Environment::default(), &[]);
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("s3cr3t"),
            session_token: None,
            origin: "test".into(),
        };
        let url = reqwest::Url::parse("http://127.0.0.1:5000/").unwrap();
        let built = |host: &EcrHost| signed_request(&http, &url, host, &credentials).unwrap().build().unwrap();
        let header = |request: &reqwest::Request, name: &str| request.headers()[name].to_str().unwrap().to_string();
        let body = |request: &reqwest::Request| request.body().and_then(|b| b.as_bytes()).unwrap().to_vec();

        let private = built(&EcrHost::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap());
        assert_eq!(header(&private, "x-amz-target"), PRIVATE_TARGET);
        assert_eq!(body(&private), br#"{"registryIds":["123456789012"]}"#);
        let authorization = header(&private, "authorization");
        assert!(
            authorization
                .contains("/eu-west-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "),
            "{authorization}"
        );

        let public = built(&EcrHost::Public);
        assert_eq!(header(&public, "x-amz-target"), PUBLIC_TARGET);
        assert_eq!(header(&public, "content-type"), CONTENT_TYPE);
        assert_eq!(body(&public), b"{}");
        assert!(header(&public, "authorization").contains("/us-east-1/ecr-public/aws4_request"));
    }

    #[test]
    fn the_signed_host_keeps_only_a_non_default_port() {
        let host = |url: &str| host_header(&reqwest::Url::parse(url).unwrap());
        assert_eq!(host("https://api.ecr.us-east-1.amazonaws.com"), "api.ecr.us-east-1.amazonaws.com");
        assert_eq!(host("https://api.ecr.us-east-1.amazonaws.com:443/"), "api.ecr.us-east-1.amazonaws.com");
        assert_eq!(host("http://127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
