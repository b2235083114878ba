//! Software bills of materials for built images: SPDX 2.3 JSON (ko's format, the default) or
//! CycloneDX 1.5 JSON, per platform image from the binary's Go build info and per index from
//! its images. Documents are derived only from digests, build info and the image's creation
//! time, so the same build gives the same bytes. Pushing and writing files is done by the
//! builder and the publishers.

pub mod buildinfo;
mod cyclonedx;
mod embedded;
pub mod of_images;
mod spdx;

use std::path::PathBuf;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use buildinfo::BuildInfo;

use crate::digest::Digest;
use crate::platform::Platform;

pub const SPDX_MEDIA_TYPE: &str = "text/spdx+json";
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(
        "reading the Go build info of {binary} for the SBOM: {detail}; build with a Go toolchain that embeds module info, or pass --sbom=none"
    )]
    BuildInfo { binary: PathBuf, detail: String },
    #[error("writing SBOM {path}: {source}; check --sbom-dir")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Which document to make, from `--sbom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomFormat {
    Spdx,
    CycloneDx,
}

impl SbomFormat {
    /// `None` for `--sbom=none`; an unknown value is an error (ko quietly uses SPDX). An empty
    /// one (`--sbom="$UNSET"`) is the default, SPDX, as for ko.
    pub fn parse(value: &str) -> Result<Option<SbomFormat>, String> {
        match value {
            "spdx" | "" => Ok(Some(SbomFormat::Spdx)),
            "cyclonedx" => Ok(Some(SbomFormat::CycloneDx)),
            "none" => Ok(None),
            other => Err(format!("unknown value {other:?}; use spdx, cyclonedx or none")),
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => SPDX_MEDIA_TYPE,
            SbomFormat::CycloneDx => CYCLONEDX_MEDIA_TYPE,
        }
    }

    /// File name extension used by `--sbom-dir`.
    pub fn extension(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx.json",
            SbomFormat::CycloneDx => "cdx.json",
        }
    }
}

/// A finished document and its media type.
#[derive(Clone, Debug, PartialEq)]
pub struct Sbom {
    pub format: SbomFormat,
    pub bytes: Bytes,
}

impl Sbom {
    pub fn media_type(&self) -> &'static str {
        self.format.media_type()
    }
}

/// The base image an image or index was built on (its annotations).
#[derive(Clone, Debug)]
pub struct BaseRef {
    pub name: String,
    pub digest: Digest,
}

/// What an image's SBOM describes.
pub struct ImageFacts<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    /// The config's `created`, if any.
    pub created: Option<&'a str>,
    pub base: Option<BaseRef>,
    pub build_info: &'a BuildInfo,
}

/// What an index's SBOM describes.
pub struct IndexFacts<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub created: Option<&'a str>,
    pub base: Option<BaseRef>,
    /// Each image's digest, media type and platform, in index order.
    pub images: Vec<(&'a Digest, &'a str, &'a Platform)>,
}

pub fn for_image(format: SbomFormat, facts: &ImageFacts) -> Sbom {
    let bytes = match format {
        SbomFormat::Spdx => spdx::image(facts),
        SbomFormat::CycloneDx => cyclonedx::image(facts),
    };
    Sbom { format, bytes: Bytes::from(bytes) }
}

pub fn for_index(format: SbomFormat, facts: &IndexFacts) -> Sbom {
    let bytes = match format {
        SbomFormat::Spdx => spdx::index(facts),
        SbomFormat::CycloneDx => cyclonedx::index(facts),
    };
    Sbom { format, bytes: Bytes::from(bytes) }
}

/// `--sbom-dir` file name: `<app>-<platform, '/' and ':' as '-'>.<ext>` or `<app>-index.<ext>`.
pub fn file_name(app: &str, platform: Option<&Platform>, format: SbomFormat) -> String {
    let which = platform.map(|p| p.to_string().replace(['/', ':'], "-")).unwrap_or_else(|| "index".into());
    format!("{app}-{which}.{}", format.extension())
}

/// Writes an SBOM into `dir` (created if missing), mode 0644 as ko does.
pub fn write_to_dir(dir: &std::path::Path, name: &str, sbom: &Sbom) -> Result<PathBuf, SbomError> {
    let path = dir.join(name);
    let err = |source| SbomError::Write { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(|source| SbomError::Write { path: dir.to_path_buf(), source })?;
    crate::cache::write_atomic(&path, &sbom.bytes).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    Ok(path)
}

/// The tool named in documents.
fn tool_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// A timestamp as both formats want it (`YYYY-MM-DDThh:mm:ssZ`): the image's `created` cut
/// to whole seconds, else the Unix epoch.
fn timestamp(created: Option<&str>) -> String {
    match created {
        Some(c) if c.len() >= 19 && c.as_bytes()[10] == b'T' && !c.starts_with("0001-") => format!("{}Z", &c[..19]),
        _ => "1970-01-01T00:00:00Z".into(),
    }
}

/// What purls leave as they are: RFC 3986's unreserved characters.
const PURL_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but purl's unreserved characters (as `%XX`, upper case).
fn purl_encode(text: &str) -> String {
    utf8_percent_encode(text, PURL_UNRESERVED).to_string()
}

/// `?k=v&…` in key order, the purl spec's canonical form (and ko's).
fn qualifiers(pairs: &[(&str, &str)]) -> String {
    let mut pairs: Vec<&(&str, &str)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    pairs.sort_by_key(|(k, _)| *k);
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", purl_encode(v))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// `pkg:oci/<name>@<digest>?<qualifiers>`.
fn oci_purl(name: &str, digest: &Digest, pairs: &[(&str, &str)]) -> String {
    format!("pkg:oci/{}@{}{}", purl_encode(name), purl_encode(digest.as_str()), qualifiers(pairs))
}

/// `pkg:golang/<path>@<version>?type=module`, with the first two path elements lowercased
/// when there are more than two, as ko does (`example.com/App` stays as it is).
fn go_purl(path: &str, version: &str) -> String {
    let lower = path.split('/').count() > 2;
    let segments: Vec<String> = path
        .split('/')
        .enumerate()
        .map(|(i, s)| purl_encode(&if i < 2 && lower { s.to_lowercase() } else { s.to_string() }))
        .collect();
    let version = if version.is_empty() { String::new() } else { format!("@{}", purl_encode(version)) };
    format!("pkg:golang/{}{version}?type=module", segments.join("/"))
}

/// Where the Go module proxy serves a module's zip: path and version case-encoded as the
/// proxy protocol asks (`github.com/BurntSushi/toml` is `github.com/!burnt!sushi/toml`), so
/// the address answers for modules with capitals too.
fn module_download(path: &str, version: &str) -> String {
    let escape = |text: &str| {
        text.chars().fold(String::new(), |mut out, c| {
            if c.is_ascii_uppercase() {
                out.push('!');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
            out
        })
    };
    format!("https://proxy.golang.org/{}/@v/{}.zip", escape(path), escape(version))
}

/// A base reference split for its purl: last path element, repository, tag.
fn base_parts(name: &str) -> (String, String, String) {
    let without_digest = name.split('@').next().unwrap_or(name);
    let slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match without_digest[slash..].rfind(':') {
        Some(i) => (&without_digest[..slash + i], &without_digest[slash + i + 1..]),
        None => (without_digest, ""),
    };
    let last = repo.rsplit('/').next().unwrap_or(repo);
    (last.to_string(), repo.to_string(), tag.to_string())
}

fn base_purl(base: &BaseRef) -> String {
    let (last, repo, tag) = base_parts(&base.name);
    oci_purl(&last, &base.digest, &[("repository_url", &repo), ("tag", &tag)])
}

fn platform_qualifiers(p: &Platform) -> Vec<(&'static str, String)> {
    let mut qualifiers = vec![
        ("arch", p.arch.clone()),
        ("os", p.os.clone()),
        ("variant", p.variant.clone().unwrap_or_default()),
        ("os-version", p.os_version.clone().unwrap_or_default()),
    ];
    // One qualifier per feature, in the platform's order, as ko writes them.
    qualifiers.extend(p.os_features.iter().map(|f| ("os-feature", f.clone())));
    qualifiers
}

fn to_json(value: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("SBOMs always serialize");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platforms_os_features_are_qualifiers_of_its_purl() {
        let platform = Platform {
            os_version: Some("10.0.20348.2113".into()),
            os_features: vec!["win32k".into()],
            ..Platform::linux("amd64")
        };
        let platform = Platform { os: "windows".into(), ..platform };
        let quals = platform_qualifiers(&platform);
        let pairs: Vec<(&str, &str)> = quals.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            oci_purl("image", &Digest::of(b"x"), &pairs).split_once('?').unwrap().1,
            "arch=amd64&os=windows&os-feature=win32k&os-version=10.0.20348.2113"
        );
    }

    #[test]
    fn download_addresses_are_case_encoded_as_the_proxy_asks() {
        assert_eq!(
            module_download("github.com/BurntSushi/toml", "v1.6.0"),
            "https://proxy.golang.org/github.com/!burnt!sushi/toml/@v/v1.6.0.zip"
        );
        assert_eq!(
            module_download("github.com/google/uuid", "v1.6.0"),
            "https://proxy.golang.org/github.com/google/uuid/@v/v1.6.0.zip"
        );
    }

    #[test]
    fn purls_are_encoded_like_ko() {
        assert_eq!(go_purl("github.com/Foo/Bar/baz", "v1.0.0"), "pkg:golang/github.com/foo/Bar/baz@v1.0.0?type=module");
        assert_eq!(go_purl("example.com/app", "(devel)"), "pkg:golang/example.com/app@%28devel%29?type=module");
        assert_eq!(
            go_purl("Example.com/App", "v1"),
            "pkg:golang/Example.com/App@v1?type=module",
            "two elements: as they are"
        );
        let d = Digest::of(b"x");
        let base = BaseRef { name: "127.0.0.1:5000/lib/base:v1".into(), digest: d.clone() };
        assert_eq!(
            base_purl(&base),
            format!("pkg:oci/base@sha256%3A{}?repository_url=127.0.0.1%3A5000%2Flib%2Fbase&tag=v1", d.hex())
        );
    }

    #[test]
    fn purls_are_encoded_as_by_the_hand_written_encoder_they_replaced() {
        let old = |text: &str| -> String {
            let mut out = String::new();
            for b in text.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
                    _ => out.push_str(&format!("%{b:02X}")),
                }
            }
            out
        };
        assert_eq!(purl_encode("sha256:ab/c d+é~_.-"), "sha256%3Aab%2Fc%20d%2B%C3%A9~_.-");
        let every_char: String = (1u32..0x800).filter_map(char::from_u32).collect();
        assert_eq!(purl_encode(&every_char), old(&every_char));
    }

    #[test]
    fn sbom_dir_names_follow_ko() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(file_name("app", Some(&p), SbomFormat::Spdx), "app-linux-arm-v7.spdx.json");
        assert_eq!(file_name("app", None, SbomFormat::CycloneDx), "app-index.cdx.json");
        let w = Platform::parse("windows/amd64:10.0.20348").unwrap();
        assert_eq!(file_name("test", Some(&w), SbomFormat::Spdx), "test-windows-amd64-10.0.20348.spdx.json");
    }

    #[test]
    fn timestamps_are_whole_seconds_in_utc_form() {
        assert_eq!(timestamp(Some("2024-05-01T10:11:12.123456Z")), "2024-05-01T10:11:12Z");
        assert_eq!(timestamp(None), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(Some("0001-01-01T00:00:00Z")), "1970-01-01T00:00:00Z");
    }
}
