//! The framing of Go's `GOCACHEPROG` protocol (`cmd/go/internal/cacheprog`): the requests Go
//! writes on the program's stdin (one JSON object a line; a `put` with `BodySize > 0` is
//! followed by a line holding its body as a base64 JSON string) and the responses the program
//! writes on stdout (one JSON object a line, in any order, matched by `ID`). Byte fields
//! (`ActionID`, `OutputID`) are base64, as Go's `encoding/json` writes `[]byte`. It owns no
//! cache policy: `mod.rs` answers the requests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// The commands this program declares in its first message.
pub const KNOWN_COMMANDS: [&str; 3] = ["get", "put", "close"];

/// One request from Go, with the body of a `put` already read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub id: i64,
    pub command: String,
    pub action_id: Vec<u8>,
    pub output_id: Vec<u8>,
    pub body: Vec<u8>,
    /// How long the body took to arrive. Go holds its one write lock meanwhile, so its other
    /// requests wait too.
    pub body_read: std::time::Duration,
}

/// The JSON object of a request as Go encodes it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestHead {
    #[serde(rename = "ID")]
    id: i64,
    command: String,
    #[serde(rename = "ActionID", default, with = "b64")]
    action_id: Vec<u8>,
    #[serde(rename = "OutputID", default, with = "b64")]
    output_id: Vec<u8>,
    #[serde(default)]
    body_size: i64,
}

/// A response to Go. `Default` is an empty one; set what the answer needs.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub err: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_commands: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub miss: bool,
    #[serde(rename = "OutputID", skip_serializing_if = "Vec::is_empty", with = "b64")]
    pub output_id: Vec<u8>,
    #[serde(skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub disk_path: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Response {
    /// The first message: ID 0 and the commands this program answers.
    pub fn hello() -> Response {
        Response { known_commands: KNOWN_COMMANDS.iter().map(|c| c.to_string()).collect(), ..Default::default() }
    }

    /// One line of JSON, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a response always serialises");
        line.push(b'\n');
        line
    }
}

/// A request that cannot be read: Go and this program disagree on the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("reading a GOCACHEPROG request: {0}")]
    Io(#[from] std::io::Error),
    #[error("a GOCACHEPROG request is not valid JSON ({detail}): {line:?}")]
    Json { detail: String, line: String },
    #[error("the body of GOCACHEPROG request {id} is {detail}")]
    Body { id: i64, detail: String },
}

/// Reads the next request, or `None` at the end of the input. Blank lines are skipped (Go
/// writes one after each request object).
pub fn read_request<R: BufRead>(input: &mut R) -> Result<Option<Request>, ProtocolError> {
    let Some(line) = next_line(input)? else { return Ok(None) };
    let head: RequestHead =
        serde_json::from_str(&line).map_err(|e| ProtocolError::Json { detail: e.to_string(), line: shorten(&line) })?;
    let mut request = Request {
        id: head.id,
        command: head.command,
        action_id: head.action_id,
        output_id: head.output_id,
        ..Default::default()
    };
    if head.body_size > 0 {
        let started = std::time::Instant::now();
        request.body = read_body(input, head.id, head.body_size)?;
        request.body_read = started.elapsed();
    }
    Ok(Some(request))
}

/// The most a body's line reserves before it is read.
const MAX_RESERVED: usize = 64 << 20;

fn read_body<R: BufRead>(input: &mut R, id: i64, size: i64) -> Result<Vec<u8>, ProtocolError> {
    let body_error = |detail: String| ProtocolError::Body { id, detail };
    // Bodies run to megabytes: the line stays bytes, and Go's plain base64 string (no escapes)
    // is decoded where it lies; anything else goes through a JSON parser.
    // Reserved up front for the sizes Go sends; a larger (or absurd) `BodySize` grows the line.
    let mut line = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(MAX_RESERVED) / 3 * 4 + 8);
    if !next_nonblank(input, &mut line)? {
        return Err(body_error("missing (the input ended)".into()));
    }
    let text = line.trim_ascii();
    let body = match text.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\"")) {
        Some(inner) if !inner.contains(&b'\\') => STANDARD.decode(inner),
        _ => {
            let encoded: String =
                serde_json::from_slice(text).map_err(|e| body_error(format!("not a JSON string: {e}")))?;
            STANDARD.decode(encoded.as_bytes())
        }
    }
    .map_err(|e| body_error(format!("not base64: {e}")))?;
    if body.len() as i64 != size {
        return Err(body_error(format!("{} bytes, not the {size} its BodySize says", body.len())));
    }
    Ok(body)
}

/// The next line that is not blank, trimmed.
fn next_line<R: BufRead>(input: &mut R) -> Result<Option<String>, std::io::Error> {
    let mut line = Vec::new();
    if !next_nonblank(input, &mut line)? {
        return Ok(None);
    }
    String::from_utf8(line.trim_ascii().to_vec())
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Reads the next line that is not blank into `line`; false at the end of the input.
fn next_nonblank<R: BufRead>(input: &mut R, line: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        line.clear();
        if input.read_until(b'\n', line)? == 0 {
            return Ok(false);
        }
        if !line.trim_ascii().is_empty() {
            return Ok(true);
        }
    }
}

fn shorten(line: &str) -> String {
    line.chars().take(200).collect()
}

/// `[]byte` as Go's `encoding/json` spells it: a base64 string, or `null`.
mod b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(Vec::new()),
            Some(text) => STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &str) -> Result<Vec<Request>, ProtocolError> {
        let mut reader = input.as_bytes();
        let mut requests = Vec::new();
        while let Some(request) = read_request(&mut reader)? {
            requests.push(request);
        }
        Ok(requests)
    }

    #[test]
    fn requests_are_read_as_go_writes_them() {
        // What cmd/go writes: the object, a newline from the encoder, one more newline, and
        // for a put the body as a base64 JSON string on its own line.
        let action = STANDARD.encode([1u8; 32]);
        let output = STANDARD.encode([2u8; 32]);
        let input = format!(
            "{{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"{action}\"}}\n\n\
             {{\"ID\":2,\"Command\":\"put\",\"ActionID\":\"{action}\",\"OutputID\":\"{output}\",\"BodySize\":5}}\n\n\
             \"{}\"\n\
             {{\"ID\":3,\"Command\":\"put\",\"ActionID\":\"{action}\",\"OutputID\":\"{output}\"}}\n\n\
             {{\"ID\":4,\"Command\":\"close\"}}\n\n",
            STANDARD.encode(b"hello")
        );
        let requests = read_all(&input).unwrap();
        assert_eq!(requests.len(), 4);
        assert_eq!((requests[0].id, requests[0].command.as_str()), (1, "get"));
        assert_eq!(requests[0].action_id, vec![1u8; 32]);
        assert_eq!(requests[1].output_id, vec![2u8; 32]);
        assert_eq!(requests[1].body, b"hello");
        assert!(requests[2].body.is_empty(), "an empty put has no body line");
        assert_eq!(requests[3], Request { id: 4, command: "close".into(), ..Default::default() });
    }

    #[test]
    fn a_body_with_json_escapes_is_still_read() {
        // Go writes plain base64, but any JSON string that decodes to it is the same body.
        let input = "{\"ID\":1,\"Command\":\"put\",\"BodySize\":5}\n\n  \"aGVsbG8\\u003d\"  \n";
        assert_eq!(read_all(input).unwrap()[0].body, b"hello");
        let bare = "{\"ID\":2,\"Command\":\"put\",\"BodySize\":5}\naGVsbG8=\n";
        assert!(read_all(bare).unwrap_err().to_string().contains("not a JSON string"));
    }

    #[test]
    fn a_body_of_the_wrong_size_or_not_base64_is_an_error() {
        let short = format!("{{\"ID\":7,\"Command\":\"put\",\"BodySize\":9}}\n\"{}\"\n", STANDARD.encode(b"hello"));
        let error = read_all(&short).unwrap_err().to_string();
        assert!(error.contains("request 7") && error.contains("5 bytes, not the 9"), "{error}");
        let garbage = "{\"ID\":8,\"Command\":\"put\",\"BodySize\":3}\n\"!!!\"\n";
        assert!(read_all(garbage).unwrap_err().to_string().contains("not base64"));
        let missing = "{\"ID\":9,\"Command\":\"put\",\"BodySize\":3}\n";
        assert!(read_all(missing).unwrap_err().to_string().contains("missing"));
        assert!(read_all("{not json\n").unwrap_err().to_string().contains("not valid JSON"));
        // An absurd size is an error, not an allocation that fails.
        let huge = format!("{{\"ID\":10,\"Command\":\"put\",\"BodySize\":{}}}\n\"aGVsbG8=\"\n", i64::MAX);
        assert!(read_all(&huge).unwrap_err().to_string().contains("not the 9223372036854775807"));
    }

    #[test]
    fn responses_are_one_line_of_go_json() {
        let hello = String::from_utf8(Response::hello().to_line()).unwrap();
        assert_eq!(hello, "{\"ID\":0,\"KnownCommands\":[\"get\",\"put\",\"close\"]}\n");
        let miss = Response { id: 3, miss: true, ..Default::default() };
        assert_eq!(miss.to_line(), b"{\"ID\":3,\"Miss\":true}\n");
        let hit = Response { id: 4, output_id: vec![255, 0], size: 12, disk_path: "/c/o".into(), ..Default::default() };
        assert_eq!(hit.to_line(), b"{\"ID\":4,\"OutputID\":\"/wA=\",\"Size\":12,\"DiskPath\":\"/c/o\"}\n");
        let failed = Response { id: 5, err: "disk full".into(), ..Default::default() };
        assert_eq!(failed.to_line(), b"{\"ID\":5,\"Err\":\"disk full\"}\n");
    }
}
