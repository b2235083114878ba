//! Target platforms: parsing `os[/arch[/variant]][:osversion]`, matching them against what a
//! base image offers, and the Go environment (`GOOS`, `GOARCH`, `GOARM`, `GOAMD64`) each needs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every `GOOS/GOARCH` pair the Go toolchain can target (`go tool dist list`).
const GO_TARGETS: &[&str] = &[
    "aix/ppc64",
    "android/386",
    "android/amd64",
    "android/arm",
    "android/arm64",
    "darwin/amd64",
    "darwin/arm64",
    "dragonfly/amd64",
    "freebsd/386",
    "freebsd/amd64",
    "freebsd/arm",
    "freebsd/arm64",
    "freebsd/riscv64",
    "illumos/amd64",
    "ios/amd64",
    "ios/arm64",
    "js/wasm",
    "linux/386",
    "linux/amd64",
    "linux/arm",
    "linux/arm64",
    "linux/loong64",
    "linux/mips",
    "linux/mips64",
    "linux/mips64le",
    "linux/mipsle",
    "linux/ppc64",
    "linux/ppc64le",
    "linux/riscv64",
    "linux/s390x",
    "netbsd/386",
    "netbsd/amd64",
    "netbsd/arm",
    "netbsd/arm64",
    "openbsd/386",
    "openbsd/amd64",
    "openbsd/arm",
    "openbsd/arm64",
    "openbsd/ppc64",
    "openbsd/riscv64",
    "plan9/386",
    "plan9/amd64",
    "plan9/arm",
    "solaris/amd64",
    "wasip1/wasm",
    "windows/386",
    "windows/amd64",
    "windows/arm64",
];

/// An OCI platform. Empty fields act as wildcards when the platform is used as a request. Read
/// from a base index, a descriptor whose platform lacks `os` or `architecture` reads with them
/// empty (such an entry then matches nothing), rather than making the whole index unreadable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(rename = "architecture", default)]
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Kept from a base index's descriptors into ours, as ko copies them (`win32k` on
    /// Windows); not used to match platforms.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(
        "invalid platform {value:?}: expected os[/arch[/variant]][:osversion], for example linux/arm64 or linux/arm/v7"
    )]
    Malformed { value: String },
    #[error("unknown platform {value:?}: Go cannot build for it (see `go tool dist list` for the valid os/arch pairs)")]
    Unknown { value: String },
    #[error("invalid platform {value:?}: {reason}")]
    BadVariant { value: String, reason: &'static str },
    #[error(
        "{source_name} names no platform; give one or more, for example linux/amd64,linux/arm64, or all (every platform of the base)"
    )]
    Empty { source_name: String },
    #[error(
        "invalid platform list {value:?}: all means every platform of the base and cannot be combined with others; give all alone, or list the platforms"
    )]
    AllCombined { value: String },
}

/// What the user asked for: every platform the base offers, or a list of specs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformRequest {
    All,
    List(Vec<Platform>),
}

impl PlatformRequest {
    /// Parses `--platform` values: comma-separated and/or repeated, `all` only on its own.
    /// Values that name nothing (`--platform=`) are an error naming `source_name`.
    pub fn parse_from(source_name: &str, values: &[String]) -> Result<Self, PlatformError> {
        let request = Self::parse(values)?;
        if request == PlatformRequest::List(vec![]) {
            return Err(PlatformError::Empty { source_name: source_name.to_string() });
        }
        Ok(request)
    }

    /// Parses `--platform` values: comma-separated and/or repeated, `all` only on its own.
    pub fn parse(values: &[String]) -> Result<Self, PlatformError> {
        let items: Vec<&str> = values
            .iter()
            .flat_map(|v| v.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|s| !s.is_empty())
            .collect();
        if items.contains(&"all") {
            if items.len() > 1 {
                return Err(PlatformError::AllCombined { value: items.join(",") });
            }
            return Ok(PlatformRequest::All);
        }
        let mut list = Vec::new();
        for item in items {
            let p = Platform::parse(item)?;
            if !list.contains(&p) {
                list.push(p);
            }
        }
        Ok(PlatformRequest::List(list))
    }
}

impl Platform {
    pub fn linux(arch: &str) -> Self {
        Platform { os: "linux".into(), arch: arch.into(), ..Platform::default() }
    }

    /// The platform an image config declares (`os`, `architecture`, `variant`, `os.version`),
    /// linux/amd64 where it says nothing, as Docker assumes.
    pub fn from_config(config: &serde_json::Value) -> Self {
        // An empty value is no value (ko reads an empty os or architecture as linux/amd64).
        let text = |k: &str| config.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
        Platform {
            os: text("os").unwrap_or_else(|| "linux".into()),
            arch: text("architecture").unwrap_or_else(|| "amd64".into()),
            variant: text("variant"),
            os_version: text("os.version"),
            os_features: config
                .get("os.features")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            features: Vec::new(),
        }
    }

    pub fn with_variant(mut self, variant: &str) -> Self {
        self.variant = Some(variant.to_string());
        self
    }

    /// Parses one spec and checks that Go can target it.
    pub fn parse(value: &str) -> Result<Self, PlatformError> {
        let malformed = || PlatformError::Malformed { value: value.to_string() };
        let (main, os_version) = match value.split_once(':') {
            Some((m, v)) if !v.is_empty() => (m, Some(v.to_string())),
            Some(_) => return Err(malformed()),
            None => (value, None),
        };
        let mut parts: Vec<&str> = main.split('/').collect();
        // A trailing empty part (`linux/`, `linux/arm/`) asks for nothing more, as in ko.
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        let valid_chars = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
        if !parts.iter().all(|p| valid_chars(p)) {
            return Err(malformed());
        }
        let platform = Platform {
            os: parts[0].to_string(),
            arch: parts.get(1).map(|s| s.to_string()).unwrap_or_default(),
            variant: parts.get(2).map(|s| s.to_string()),
            os_version,
            ..Platform::default()
        };
        let known = if platform.arch.is_empty() {
            GO_TARGETS.iter().any(|t| t.split('/').next() == Some(platform.os.as_str()))
        } else {
            GO_TARGETS.contains(&format!("{}/{}", platform.os, platform.arch).as_str())
        };
        if !known {
            return Err(PlatformError::Unknown { value: value.to_string() });
        }
        platform.go_env().map_err(|reason| PlatformError::BadVariant { value: value.to_string(), reason })?;
        Ok(platform)
    }

    /// Whether `self`, used as a request, accepts `candidate` (a platform a base offers).
    /// Empty fields match anything; `unknown` entries (attestations) never match.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if candidate.os == "unknown"
            || candidate.arch == "unknown"
            || candidate.os.is_empty()
            || candidate.arch.is_empty()
        {
            return false;
        }
        let field = |want: &str, have: &str| want.is_empty() || want == have;
        let variant_ok = match (&self.variant, &candidate.variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            // An unstated variant is the default one of its architecture.
            (Some(want), None) => default_variant(&candidate.arch) == Some(want.as_str()),
        };
        let version_ok = match (&self.os_version, &candidate.os_version) {
            (None, _) => true,
            // As in ko: on Windows, a version X.Y.Z matches X.Y.Z.N (any revision N).
            (Some(want), Some(have)) => {
                want == have
                    || (self.os == "windows"
                        && want.matches('.').count() == 2
                        && have.matches('.').count() == 3
                        && have.rsplit_once('.').is_some_and(|(release, _)| release == want))
            }
            (Some(_), None) => false,
        };
        field(&self.os, &candidate.os) && field(&self.arch, &candidate.arch) && variant_ok && version_ok
    }

    /// `GOOS`, `GOARCH` and, where the variant calls for it, `GOARM` or `GOAMD64`.
    pub fn go_env(&self) -> Result<Vec<(String, String)>, &'static str> {
        let mut env = vec![("GOOS".to_string(), self.os.clone()), ("GOARCH".to_string(), self.arch.clone())];
        if let Some(variant) = &self.variant {
            match self.arch.as_str() {
                "arm" => {
                    let n: u32 = variant
                        .strip_prefix('v')
                        .ok_or("an arm variant must look like v5, v6 or v7")?
                        .parse()
                        .map_err(|_| "an arm variant must look like v5, v6 or v7")?;
                    if n >= 5 {
                        env.push(("GOARM".to_string(), n.min(7).to_string()));
                    }
                }
                "amd64" => {
                    if !matches!(variant.as_str(), "v1" | "v2" | "v3" | "v4") {
                        return Err("an amd64 variant must be one of v1, v2, v3, v4");
                    }
                    env.push(("GOAMD64".to_string(), variant.clone()));
                }
                _ => {}
            }
        }
        Ok(env)
    }

    /// The platform this program runs on, in Go's spelling.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform { os: std::env::consts::OS.to_string(), arch: arch.to_string(), ..Platform::default() }
    }

    /// The platform written into file names: `/` and `:` become `-`.
    pub fn file_stem(&self) -> String {
        self.to_string().replace(['/', ':'], "-")
    }
}

fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "amd64" => Some("v1"),
        _ => None,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.os)?;
        if !self.arch.is_empty() {
            write!(f, "/{}", self.arch)?;
        }
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        if let Some(v) = &self.os_version {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_os_or_architecture_in_a_config_is_linux_amd64_as_in_ko() {
        let p = Platform::from_config(&serde_json::json!({"os": "", "architecture": "", "variant": ""}));
        assert_eq!(p, Platform::linux("amd64"));
    }

    #[test]
    fn os_features_of_a_descriptor_are_kept() {
        let json = r#"{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1","os.features":["win32k"]}"#;
        let platform: Platform = serde_json::from_str(json).unwrap();
        assert_eq!(platform.os_features, ["win32k"]);
        assert_eq!(serde_json::to_string(&platform).unwrap(), json);
        let plain = serde_json::to_string(&Platform::linux("arm64")).unwrap();
        assert_eq!(plain, r#"{"os":"linux","architecture":"arm64"}"#);
    }

    #[test]
    fn an_empty_request_names_its_source() {
        for values in [vec![String::new()], vec![",".to_string(), " ".to_string()]] {
            let err = PlatformRequest::parse_from("--platform", &values).unwrap_err().to_string();
            assert!(err.starts_with("--platform names no platform"), "{err}");
        }
        assert_eq!(PlatformRequest::parse_from("--platform", &["all".into()]).unwrap(), PlatformRequest::All);
    }

    #[test]
    fn parses_full_and_partial_specs() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!((p.os.as_str(), p.arch.as_str(), p.variant.as_deref()), ("linux", "arm", Some("v7")));
        assert_eq!(Platform::parse("linux").unwrap().arch, "");
        let w = Platform::parse("windows/amd64:10.0.20348").unwrap();
        assert_eq!(w.os_version.as_deref(), Some("10.0.20348"));
        assert_eq!(w.to_string(), "windows/amd64:10.0.20348");
    }

    #[test]
    fn a_windows_release_matches_its_revisions_only() {
        let base = Platform::parse("windows/amd64:10.0.20348.2113").unwrap();
        for (want, matches) in [
            ("windows/amd64:10.0.20348.2113", true),
            ("windows/amd64:10.0.20348", true),
            ("windows/amd64:10.0.2034", false),
            ("windows/amd64:10.0", false),
            ("windows/amd64:10", false),
            ("windows/amd64:10.0.17763", false),
            ("windows/amd64", true),
        ] {
            assert_eq!(Platform::parse(want).unwrap().matches(&base), matches, "{want}");
        }
        let linux = Platform { os_version: Some("5.15.1".into()), ..Platform::linux("amd64") };
        assert!(!Platform { os_version: Some("5.15".into()), ..Platform::linux("amd64") }.matches(&linux));
    }

    #[test]
    fn rejects_bad_specs() {
        assert_eq!(Platform::parse("linux/").unwrap(), Platform::parse("linux").unwrap());
        assert_eq!(Platform::parse("linux/arm64/").unwrap(), Platform::linux("arm64"));
        assert_eq!(Platform::parse("linux/arm/v7/").unwrap(), Platform::parse("linux/arm/v7").unwrap());
        for bad in ["linux/arm64/v3/z5", "linux//amd64", "/amd64", "/", "", "linux/amd64:", "lin ux"] {
            assert!(matches!(Platform::parse(bad), Err(PlatformError::Malformed { .. })), "{bad}");
        }
        for unknown in ["linux/amd46", "plan10", "darwin/s390x"] {
            assert!(matches!(Platform::parse(unknown), Err(PlatformError::Unknown { .. })), "{unknown}");
        }
        assert!(matches!(Platform::parse("linux/arm/x7"), Err(PlatformError::BadVariant { .. })));
    }

    #[test]
    fn a_descriptor_platform_without_os_or_architecture_reads_as_empty_and_matches_nothing() {
        let empty: Platform = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Platform::default());
        assert!(!Platform::linux("amd64").matches(&empty) && !Platform::parse("linux").unwrap().matches(&empty));
        let no_arch: Platform = serde_json::from_str(r#"{"os":"linux"}"#).unwrap();
        assert!(!Platform::parse("linux").unwrap().matches(&no_arch) && !Platform::default().matches(&no_arch));
    }

    #[test]
    fn request_all_must_stand_alone() {
        assert_eq!(PlatformRequest::parse(&["all".into()]).unwrap(), PlatformRequest::All);
        let combined = PlatformRequest::parse(&["all,linux/amd64".into()]).unwrap_err();
        assert!(combined.to_string().contains("cannot be combined with others"), "{combined}");
        let list = PlatformRequest::parse(&["linux/amd64,linux/arm64".into(), "linux/amd64".into()]).unwrap();
        assert_eq!(list, PlatformRequest::List(vec![Platform::linux("amd64"), Platform::linux("arm64")]));
    }

    #[test]
    fn matching_treats_empty_fields_as_wildcards() {
        let arm64v8 = Platform::linux("arm64").with_variant("v8");
        assert!(Platform::parse("linux").unwrap().matches(&arm64v8));
        assert!(Platform::linux("arm64").matches(&arm64v8));
        assert!(Platform::parse("linux/arm64/v8").unwrap().matches(&Platform::linux("arm64")));
        assert!(!Platform::parse("linux/arm/v6").unwrap().matches(&Platform::linux("arm").with_variant("v7")));
        let attestation = Platform { os: "unknown".into(), arch: "unknown".into(), ..Default::default() };
        assert!(!Platform::default().matches(&attestation));
    }

    #[test]
    fn variants_drive_the_go_environment() {
        let env = Platform::parse("linux/arm/v7").unwrap().go_env().unwrap();
        assert!(env.contains(&("GOARM".into(), "7".into())));
        let env = Platform::parse("linux/amd64/v3").unwrap().go_env().unwrap();
        assert!(env.contains(&("GOAMD64".into(), "v3".into())));
        let env = Platform::parse("linux/arm64/v8").unwrap().go_env().unwrap();
        assert_eq!(env.len(), 2);
    }
}
