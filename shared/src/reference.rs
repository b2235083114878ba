//! Image references as Docker spells them: `[registry[:port]/]path[:tag][@digest]`.
//! Parsing validates every part; the user's spelling is kept for printing while the
//! normalised registry and repository are used to talk to the registry.

use std::fmt;

use crate::digest::Digest;

pub const DOCKER_HUB: &str = "index.docker.io";

/// The longest repository name (registry and path, as spelt) the distribution spec allows.
pub const NAME_MAX: usize = 255;
/// The longest tag the OCI distribution spec allows.
pub const TAG_MAX: usize = 128;

#[derive(Debug, thiserror::Error)]
#[error("{} is not a valid image reference: {reason}", quoted(value))]
pub struct ReferenceError {
    pub value: String,
    pub reason: String,
}

impl ReferenceError {
    /// A value as error lines show it; see [`quoted`].
    pub fn quote(value: &str) -> String {
        quoted(value)
    }
}

/// A value for an error line: quoted, and cut to its start when it is too long to read.
pub fn quoted(value: &str) -> String {
    const SHOWN: usize = 80;
    let count = value.chars().count();
    if count <= SHOWN {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{head:?}... ({count} characters)")
    }
}

/// A repository: where images live in a registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repository {
    /// Normalised host (and port): `docker.io` becomes `index.docker.io`.
    pub registry: String,
    /// Normalised path: Docker Hub's one-element names gain `library/`.
    pub path: String,
}

impl Repository {
    pub fn parse(value: &str) -> Result<Repository, ReferenceError> {
        let reference = Reference::parse(value)?;
        if reference.tag.is_some() || reference.digest.is_some() {
            // `localhost:5000` reads as the image `localhost` at tag `5000`.
            let host_and_port = !value.contains('/')
                && value.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let reason = if host_and_port {
                "it names a registry (host:port) but no repository in it; add a path after the registry".into()
            } else {
                "a repository has no tag or digest".into()
            };
            return Err(ReferenceError { value: value.to_string(), reason });
        }
        Ok(reference.repository)
    }
}

impl fmt::Display for Repository {
    /// `registry/path`, or the registry alone for a bare registry (`KO_DOCKER_REPO=ghcr.io`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.registry) } else { write!(f, "{}/{}", self.registry, self.path) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub repository: Repository,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Checks a tag against the OCI grammar; see [`validate_tag`].
    pub fn validate_tag(tag: &str) -> Result<(), String> {
        validate_tag(tag)
    }

    /// Checks a registry `host[:port]`; see [`validate_registry`].
    pub fn validate_registry(host: &str) -> Result<(), String> {
        validate_registry(host)
    }

    pub fn parse(value: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason: &str| ReferenceError { value: value.to_string(), reason: reason.to_string() };
        if value.is_empty() {
            return Err(fail("it is empty"));
        }
        let (rest, digest) = match value.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| fail(&e.to_string()))?)),
            None => (value, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(|r| fail(&format!("tag {tag:?} {r}")))?;
        }
        if name.chars().count() > NAME_MAX {
            return Err(fail(&format!(
                "the name is {} characters long; registries accept at most {NAME_MAX}",
                name.chars().count()
            )));
        }
        let (registry, path) = split_registry(name);
        if registry.is_empty() && name.contains("://") {
            return Err(fail("leave out the scheme (http:// or https://)"));
        }
        validate_host(registry).map_err(|r| fail(&r))?;
        validate_path(path).map_err(|r| fail(&r))?;
        let (registry, path) = normalise(registry, path);
        Ok(Reference { repository: Repository { registry, path }, tag, digest })
    }

    /// The tag or digest to ask the registry for (`latest` when neither is given).
    pub fn identifier(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Splits off the registry: the first element names a host when it has a `.` or `:` or is `localhost`.
pub(crate) fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (first, rest),
        _ => ("", name),
    }
}

fn normalise(registry: &str, path: &str) -> (String, String) {
    let registry = match registry {
        "" | "docker.io" | "registry-1.docker.io" | "index.docker.io" => DOCKER_HUB,
        other => other,
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
    (registry.to_string(), path)
}

/// Checks a tag against the OCI grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`; the error says
/// what is wrong, worded to follow the tag.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("is empty".into());
    }
    if tag.len() > TAG_MAX {
        return Err(format!("is {} characters long; tags are at most {TAG_MAX}", tag.chars().count()));
    }
    if !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err("may only hold letters, digits, '_', '.' and '-'".into());
    }
    if !tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("must start with a letter, a digit or '_'".into());
    }
    Ok(())
}

/// Checks a registry `host[:port]` (as `kubectl ko login` takes it, scheme already removed).
pub fn validate_registry(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the registry name is empty".into());
    }
    if host.chars().count() > NAME_MAX {
        return Err(format!("it is {} characters long; names are at most {NAME_MAX}", host.chars().count()));
    }
    validate_host(host)
}

fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Ok(());
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry port {port:?} is not a number"));
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("registry port {port} is out of range (1 to 65535)"));
    }
    let ok = !name.is_empty()
        && (name.starts_with('[') && name.ends_with(']')
            || name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    if ok { Ok(()) } else { Err(format!("registry host {name:?} is not a valid host name")) }
}

/// The distribution spec's path component, `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: what
/// registries take. Looser checks let `a..b` or `a___b` through to a push the registry refuses.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    if bytes.first().is_none_or(|&b| !alnum(b)) || bytes.last().is_none_or(|&b| !alnum(b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| !alnum(b)).count();
        let separator = &bytes[i..i + run];
        let ok = separator == b"." || separator == b"_" || separator == b"__" || separator.iter().all(|&b| b == b'-');
        if !ok {
            return false;
        }
        i += run;
    }
    true
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository path is empty".into());
    }
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "repository path element {component:?} must be lowercase letters and digits, separated by one '.', one or two '_', or any number of '-'"
            ));
        }
    }
    Ok(())
}

/// Whether ko (and so we) talk plain HTTP to this registry by default: loopback and private addresses.
pub fn is_plain_http_by_default(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_short_names() {
        let r = Reference::parse("golang:1.22").unwrap();
        assert_eq!(r.repository.registry, DOCKER_HUB);
        assert_eq!(r.repository.path, "library/golang");
        assert_eq!(r.tag.as_deref(), Some("1.22"));
    }

    #[test]
    fn parses_registry_with_port_tag_and_digest() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("127.0.0.1:5000/a/b:v1@{d}")).unwrap();
        assert_eq!(r.repository.registry, "127.0.0.1:5000");
        assert_eq!(r.repository.path, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.identifier(), d);
        assert_eq!(Reference::parse("localhost/x").unwrap().repository.registry, "localhost");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "UPPER/case", "ghcr.io/", "ghcr.io/a//b", "ghcr.io/a:bad tag", "http://ghcr.io/a", "a b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(Repository::parse("ghcr.io/a:v1").is_err());
        let host_only = Repository::parse("127.0.0.1:5000").unwrap_err().reason;
        assert!(host_only.contains("no repository"), "{host_only}");
        for bad in ["r.io/a..b", "r.io/a___b", "r.io/a.-b", "r.io/a_-b", "r.io/-ab", "r.io/ab_"] {
            assert!(Repository::parse(bad).is_err(), "{bad}");
        }
        for good in ["r.io/a.b", "r.io/a__b", "r.io/a---b", "r.io/a_b-c.d/e"] {
            assert!(Repository::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for good in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(validate_tag(good).is_ok(), "{good}");
        }
        for bad in ["", "-bad", ".x", "bad tag!", "a/b", "ü", &"a".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
        assert!(Reference::parse(&format!("r.io/a:{}", "a".repeat(129))).is_err());
    }

    #[test]
    fn names_are_at_most_255_characters() {
        let path = "a".repeat(NAME_MAX - "r.io/".len());
        assert!(Repository::parse(&format!("r.io/{path}")).is_ok());
        let err = Repository::parse(&format!("r.io/{path}b")).unwrap_err();
        assert!(err.reason.contains("256 characters"), "{err}");
        assert!(Reference::parse(&format!("r.io/{}:v1", "a".repeat(5000))).is_err());
    }

    #[test]
    fn registry_names_for_login() {
        assert!(validate_registry("localhost:5000").is_ok());
        assert!(validate_registry("[::1]:5000").is_ok());
        for bad in ["a b", "", "host:", "host:port", "a/b", "host:99999", "host:0", "host:123456789012345678901"] {
            assert!(validate_registry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_and_private_registries_use_plain_http() {
        assert!(is_plain_http_by_default("127.0.0.1:5000"));
        assert!(is_plain_http_by_default("localhost:5000"));
        assert!(is_plain_http_by_default("registry.localhost"));
        assert!(is_plain_http_by_default("[::1]:5000"));
        assert!(is_plain_http_by_default("192.168.1.4"));
        assert!(!is_plain_http_by_default("ghcr.io"));
    }
}
