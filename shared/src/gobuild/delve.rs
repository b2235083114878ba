//! Delve for `--debug` images: `github.com/go-delve/delve/cmd/dlv` at a pinned version, built
//! from the Go module proxy for each target platform and kept in the cache
//! (`<cache>/delve/<version>/<platform>/dlv`), so it is built once per machine. The image
//! layer and the entrypoint that wraps the app are the builder's business.

use std::path::PathBuf;

use super::{GoBuildError, GoTool};
use crate::cache::{Cache, CacheError};
use crate::output;
use crate::platform::Platform;

/// The Delve release put into debug images.
pub const VERSION: &str = "v1.27.2";
const PACKAGE: &str = "github.com/go-delve/delve/cmd/dlv";

/// Where Delve sits in the image.
pub const PATH_IN_IMAGE: &str = "/ko-app/dlv";
/// The port Delve's headless server listens on, as in ko.
pub const PORT: u16 = 40000;

/// Whether Delve can debug programs on this platform (as ko decides: Linux on amd64 and arm64).
pub fn supports(platform: &Platform) -> bool {
    platform.os == "linux" && matches!(platform.arch.as_str(), "amd64" | "arm64")
}

/// ko's debug entrypoint: Delve runs the app headless and waits for a client on port 40000.
pub fn entrypoint(app: &str) -> Vec<String> {
    let listen = format!("--listen=:{PORT}");
    [PATH_IN_IMAGE, "exec", &listen, "--headless", "--log", "--accept-multiclient", "--api-version=2", "--", app]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn failed(platform: &Platform, detail: String) -> GoBuildError {
    GoBuildError::Delve { version: VERSION.into(), platform: platform.to_string(), detail }
}

impl GoTool {
    /// The path of a Delve binary for `platform`, building it on first use.
    pub async fn delve(&self, cache: &Cache, platform: &Platform) -> Result<PathBuf, GoBuildError> {
        let dir = cache.root().join("delve").join(VERSION).join(platform.file_stem());
        let binary = dir.join("dlv");
        if binary.is_file() {
            return Ok(binary);
        }
        let work = cache.temp_dir_named("delve-")?;
        output::step(format!("Building Delve {VERSION} for {platform}"));
        let go_env = platform.go_env().map_err(|e| failed(platform, e.to_string()))?;
        let out = work.path().join("dlv");
        let steps: [Vec<String>; 3] = [
            vec!["mod".into(), "init".into(), "ko-delve".into()],
            vec!["get".into(), format!("{PACKAGE}@{VERSION}")],
            vec![
                "build".into(),
                "-trimpath".into(),
                "-ldflags=-s -w".into(),
                "-o".into(),
                out.to_string_lossy().into_owned(),
                PACKAGE.into(),
            ],
        ];
        for args in steps {
            let mut cmd = self.command(work.path());
            // The user's GOFLAGS (-mod=vendor...) and workspace are for their code, not Delve's.
            // Nor do their GOAMD64, GOARM or GOEXPERIMENT: the cache key is the platform alone.
            // GOFLAGS is set, not removed: Go would read it from the `go env -w` file otherwise.
            cmd.env("GOFLAGS", "-mod=mod").env("GOWORK", "off").env("CGO_ENABLED", "0");
            cmd.env_remove("GOAMD64").env_remove("GOARM").env_remove("GOEXPERIMENT");
            cmd.env("GOTMPDIR", work.path());
            if args[0] == "build" {
                cmd.envs(go_env.iter().map(|(k, v)| (k, v)));
            }
            let output = self.output(cmd.args(&args)).await?;
            if !output.status.success() {
                let text = String::from_utf8_lossy(&output.stderr);
                let detail = text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no output").to_string();
                return Err(failed(platform, format!("go {} ({}): {detail}", args.join(" "), output.status)));
            }
        }
        fs_err::create_dir_all(&dir).map_err(|source| CacheError { path: dir.clone(), source })?;
        // Rename into place: a concurrent build of the same platform simply wins or loses.
        fs_err::rename(&out, &binary).map_err(|source| CacheError { path: binary.clone(), source })?;
        Ok(binary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_images_follow_ko() {
        assert_eq!(
            entrypoint("/ko-app/hello"),
            [
                "/ko-app/dlv",
                "exec",
                "--listen=:40000",
                "--headless",
                "--log",
                "--accept-multiclient",
                "--api-version=2",
                "--",
                "/ko-app/hello"
            ]
        );
        assert!(supports(&Platform::linux("amd64")));
        assert!(supports(&Platform::linux("arm64")));
        assert!(!supports(&Platform::linux("arm").with_variant("v7")));
        assert!(!supports(&Platform::linux("s390x")));
    }
}
