//! AWS Signature Version 4 for the requests the ECR source signs (`GetAuthorizationToken`):
//! the canonical request, the string to sign, the derived key and the `Authorization`
//! header, with HMAC-SHA256 from `ring`. Only header signing of requests whose path and query
//! are already canonical (ECR's JSON API posts to `/`); no presigned URLs, no S3 rules.
//! Checked against AWS's published SigV4 test suite.

use ring::hmac;
use sha2::{Digest, Sha256};

use super::credentials::AwsCredentials;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a signature covers. `headers` must include `host` (as it will be sent, with a
/// non-default port); names are compared case-insensitively.
pub struct Request<'a> {
    pub method: &'a str,
    /// The URI-encoded path, `/` when empty.
    pub path: &'a str,
    /// The canonical query string (sorted, encoded), empty when there is none.
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// The region and service a signature is scoped to.
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Signs `request` at `amz_date` (`YYYYMMDDTHHMMSSZ`) and returns the headers to add to it:
/// `x-amz-date`, `x-amz-security-token` for temporary credentials (signed too, as the SDKs
/// do), and `authorization`.
pub fn sign(request: &Request, credentials: &AwsCredentials, scope: &Scope, amz_date: &str) -> Vec<(String, String)> {
    let mut added = vec![("x-amz-date".to_string(), amz_date.to_string())];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".to_string(), token.expose().to_string()));
    }
    let mut headers = request.headers.clone();
    headers.extend(added.iter().cloned());
    let (canonical, signed_headers) = canonical_request(request, &headers);
    let date = &amz_date[..amz_date.len().min(8)];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = string_to_sign(amz_date, &credential_scope, &canonical);
    let key = signing_key(credentials.secret_access_key.expose(), date, scope);
    let signature = hex::encode(hmac::sign(&key, to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    added.push(("authorization".to_string(), authorization));
    added
}

/// The canonical request and its signed-header list (`host;x-amz-date`).
fn canonical_request(request: &Request, headers: &[(String, String)]) -> (String, String) {
    let mut canonical: Vec<(String, String)> =
        headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), canonical_value(value))).collect();
    canonical.sort();
    let lines: String = canonical.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
    let signed = canonical.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
    let path = if request.path.is_empty() { "/" } else { request.path };
    let text = format!(
        "{}\n{path}\n{}\n{lines}\n{signed}\n{}",
        request.method,
        request.query,
        hex::encode(Sha256::digest(request.body))
    );
    (text, signed)
}

/// A header value trimmed, with runs of spaces collapsed to one.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn string_to_sign(amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{credential_scope}\n{hash}")
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, date: &str, scope: &Scope) -> hmac::Key {
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes());
    for part in [date, scope.region, scope.service, "aws4_request"] {
        key = hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&key, part.as_bytes()).as_ref());
    }
    key
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
pub fn amz_date(unix_secs: i64) -> String {
    crate::time::rfc3339(unix_secs).replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    /// The suite's key, region, service and time (2015-08-30T12:36:00Z).
    fn example_key(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
            origin: "test".into(),
        }
    }
    const SCOPE: Scope = Scope { region: "us-east-1", service: "service" };
    const PREFIX: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";

    fn request<'a>(method: &'a str, query: &'a str, headers: &[(&str, &str)], body: &'a [u8]) -> Request<'a> {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Request { method, path: "/", query, headers, body }
    }

    fn authorization(request: &Request, token: Option<&str>) -> String {
        let added = sign(request, &example_key(token), &SCOPE, &amz_date(1_440_938_160));
        added.into_iter().find(|(name, _)| name == "authorization").unwrap().1
    }

    #[test]
    fn get_vanilla_canonical_request_and_string_to_sign() {
        let req = request("GET", "", &[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")], b"");
        let (canonical, signed) = canonical_request(&req, &req.headers);
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let expected =
            format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{empty}");
        assert_eq!((canonical.as_str(), signed.as_str()), (expected.as_str(), "host;x-amz-date"));
        let to_sign = string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &canonical);
        assert!(to_sign.ends_with("\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"), "{to_sign}");
    }

    #[test]
    fn aws_test_suite_signatures() {
        let host = [("Host", "example.amazonaws.com")];
        let vanilla = format!(
            "{PREFIX}SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(authorization(&request("GET", "", &host, b""), None), vanilla);
        // get-vanilla-query-order-key-case (the query as canonicalised)
        let query = request("GET", "Param1=value1&Param2=value2", &host, b"");
        assert!(
            authorization(&query, None).ends_with("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
        // post-vanilla
        let post = request("POST", "", &host, b"");
        assert!(
            authorization(&post, None).ends_with("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
        // post-x-www-form-urlencoded
        let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Host", "example.amazonaws.com")];
        let expected = format!(
            "{PREFIX}SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
        assert_eq!(authorization(&request("POST", "", &form, b"Param1=value1"), None), expected);
    }

    #[test]
    fn session_tokens_are_sent_and_signed() {
        let req = request("POST", "", &[("host", "example.amazonaws.com")], b"{}");
        let added = sign(&req, &example_key(Some("tok")), &SCOPE, "20150830T123600Z");
        assert!(added.contains(&("x-amz-security-token".into(), "tok".into())));
        let auth = &added.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"), "{auth}");
        assert!(!auth.contains("tok,") && !auth.contains("EXAMPLEKEY"));
        assert_eq!(canonical_value("  a   b c "), "a b c");
    }
}
