//! The Go build information embedded in a binary, as `go version -m` prints it: the main
//! module and every dependency with its version and `h1:` checksum. ko reads modules for its
//! SBOMs the same way. Reading it (from the file, see `embedded`, or by running the tool) is
//! here; what is made of the result is not.

use std::path::Path;

use base64::Engine as _;

use super::SbomError;

/// One module line (`mod` or `dep`), with its replacement if `=>` followed.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub path: String,
    pub version: String,
    /// The `h1:` checksum, if the module came from a module download.
    pub sum: Option<String>,
    pub replace: Option<Box<Module>>,
}

impl Module {
    /// The module actually compiled in: the replacement when it is another module version.
    /// A replacement by a directory (`=> ../lib`) has no module path or version of its own,
    /// so the module is named as required, as ko names it (and with no checksum: none was
    /// downloaded).
    pub fn effective(&self) -> &Module {
        match &self.replace {
            Some(r) if !r.version.is_empty() && !is_directory(&r.path) => r,
            _ => self,
        }
    }

    /// The SHA-256 hex digest encoded in an `h1:` checksum.
    pub fn sha256_hex(&self) -> Option<String> {
        let b64 = self.sum.as_deref()?.strip_prefix("h1:")?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        (raw.len() == 32).then(|| hex::encode(raw))
    }
}

/// Whether a replacement names a directory, as `go.mod` tells them from module paths.
fn is_directory(path: &str) -> bool {
    path.starts_with("./") || path.starts_with("../") || path.starts_with('/') || path == "." || path == ".."
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildInfo {
    pub go_version: String,
    /// The main package's import path (`path` line).
    pub path: String,
    pub main: Option<Module>,
    pub deps: Vec<Module>,
    /// The `build` lines (`-ldflags=…`, `GOOS=linux`, `vcs.revision=…`), in order.
    pub settings: Vec<(String, String)>,
}

fn module(fields: &[&str]) -> Option<Module> {
    let path = (*fields.first()?).to_string();
    let version = fields.get(1).map(|v| v.to_string()).unwrap_or_default();
    let sum = fields.get(2).filter(|s| !s.is_empty()).map(|s| s.to_string());
    Some(Module { path, version, sum, replace: None })
}

/// Parses `go version -m` output; unknown lines are skipped as Go may add new kinds.
pub fn parse(text: &str) -> BuildInfo {
    let mut info = BuildInfo::default();
    let mut lines = text.lines();
    if let Some(first) = lines.next() {
        info.go_version = first.rsplit(": ").next().unwrap_or_default().trim().to_string();
    }
    // The module the next `=>` line replaces: the main module or the last dependency.
    let mut last_was_dep = false;
    for line in lines {
        let fields: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
        match fields.first().copied() {
            Some("path") => info.path = fields.get(1).unwrap_or(&"").to_string(),
            Some("mod") => {
                info.main = module(&fields[1..]);
                last_was_dep = false;
            }
            Some("dep") => {
                info.deps.extend(module(&fields[1..]));
                last_was_dep = true;
            }
            Some("build") => {
                if let Some((k, v)) = fields.get(1).and_then(|s| s.split_once('=')) {
                    info.settings.push((k.to_string(), v.to_string()));
                }
            }
            Some("=>") => {
                let replacement = module(&fields[1..]).map(Box::new);
                let target = if last_was_dep { info.deps.last_mut() } else { info.main.as_mut() };
                if let Some(target) = target {
                    target.replace = replacement;
                }
            }
            _ => {}
        }
    }
    info
}

/// The build information of `binary`: read from the file itself when Go wrote it in the
/// inline layout (Go 1.18 and later), else from `<go> version -m <binary>`. Both give the
/// same lines; reading the file spares starting Go once per image.
pub async fn read(go: &Path, binary: &Path) -> Result<BuildInfo, SbomError> {
    let path = binary.to_path_buf();
    if let Ok(Ok(Some((version, modinfo)))) = tokio::task::spawn_blocking(move || super::embedded::read(&path)).await {
        return Ok(parse(&as_go_version_m(binary, &version, &modinfo)));
    }
    run_go_version_m(go, binary).await
}

/// What `go version -m` prints for this version and these module lines.
fn as_go_version_m(binary: &Path, version: &str, modinfo: &str) -> String {
    let mut text = format!("{}: {version}\n", binary.display());
    for line in modinfo.lines() {
        text.push('\t');
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Runs `<go> version -m <binary>` and parses it.
async fn run_go_version_m(go: &Path, binary: &Path) -> Result<BuildInfo, SbomError> {
    let fail = |detail: String| SbomError::BuildInfo { binary: binary.to_path_buf(), detail };
    let output = crate::interrupt::output(tokio::process::Command::new(go).arg("version").arg("-m").arg(binary))
        .await
        .map_err(|e| fail(format!("cannot run {}: {e}", go.display())))?;
    if !output.status.success() {
        return Err(fail(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    Ok(parse(&String::from_utf8_lossy(&output.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "/tmp/app: go1.26.8\n\tpath\texample.com/app\n\tmod\texample.com/app\t(devel)\t\n\tdep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n\tdep\texample.com/old\tv1.0.0\n\t=>\texample.com/new\tv1.2.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n\tbuild\t-trimpath=true\n\tbuild\tGOOS=linux\n";

    #[test]
    fn reads_main_module_deps_and_replacements() {
        let info = parse(SAMPLE);
        assert_eq!(info.go_version, "go1.26.8");
        assert_eq!(info.path, "example.com/app");
        let main = info.main.unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str(), main.sum.as_deref()),
            ("example.com/app", "(devel)", None)
        );
        assert_eq!(info.deps.len(), 2);
        assert_eq!(info.deps[0].version, "v1.6.0");
        assert_eq!(
            info.deps[0].sha256_hex().unwrap(),
            "348bda24330eb231c0f27d630212d2833ac0cf2d4782bfa136b6f9edefbde05d"
        );
        assert_eq!(info.deps[1].effective().path, "example.com/new");
        // A directory is no module: the module keeps the path and version it was required by.
        let local = parse(
            "/tmp/app: go1.26.8\n\tpath\texample.com/app\n\tmod\texample.com/app\t(devel)\t\n\tdep\texample.com/lib\tv1.2.3\n\t=>\t../lib\t(devel)\t\n",
        );
        let lib = local.deps[0].effective();
        assert_eq!((lib.path.as_str(), lib.version.as_str(), lib.sum.as_deref()), ("example.com/lib", "v1.2.3", None));
        assert_eq!(info.settings[1], ("GOOS".to_string(), "linux".to_string()));
    }

    /// A binary Go just built reads the same from the file as from `go version -m`
    /// (this needs Go on PATH, as every test run has).
    #[tokio::test]
    async fn the_file_and_go_version_m_agree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/app\n\ngo 1.22\n").unwrap();
        std::fs::write(dir.path().join("main.go"), "package main\n\nfunc main() { println(\"hi\") }\n").unwrap();
        let built = std::process::Command::new("go")
            .args(["build", "-trimpath", "-o", "app", "."])
            .current_dir(dir.path())
            .env("CGO_ENABLED", "0")
            .status()
            .expect("go is on PATH");
        assert!(built.success());
        let binary = dir.path().join("app");
        let (version, modinfo) = super::super::embedded::read(&binary).unwrap().expect("inline build info");
        let from_file = parse(&as_go_version_m(&binary, &version, &modinfo));
        let from_go = run_go_version_m(Path::new("go"), &binary).await.unwrap();
        assert_eq!(from_file, from_go);
        assert_eq!(from_file.path, "example.com/app");
        assert!(from_file.go_version.starts_with("go1."), "{from_file:?}");
    }
}
