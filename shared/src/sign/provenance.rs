//! The SLSA provenance v1 predicate of one image or index: how it was built (the build type
//! this project owns, the parameters given and the toolchain used) and from what (the base
//! image by digest, the source's git commit, every Go module with its go.sum hash), from the
//! facts the builder has. Values only. The build type is documented in `docs/signing.md`.

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::sbom::buildinfo::{BuildInfo, Module};

/// The build type: a URI this project owns, documented at that address.
pub const BUILD_TYPE: &str = "https://github.com/kubectl-ko/kubectl-ko/blob/main/docs/signing.md#build-type-v1";

/// What the run knows of itself, the same for every image.
#[derive(Clone, Debug, Default)]
pub struct RunFacts {
    /// `runDetails.builder.id`: this tool and its version.
    pub builder_id: String,
    /// `-t/--tags`.
    pub tags: Vec<String>,
    /// `GOFLAGS`, as `go build` gets it.
    pub goflags: Option<String>,
    /// `startedOn`/`finishedOn`: `SOURCE_DATE_EPOCH` where set, else the build's time (RFC 3339).
    pub started: String,
    pub finished: String,
}

/// What one image (or index) was built from.
pub struct ImageFacts<'a> {
    pub import_path: &'a str,
    /// `os/arch[/variant]`, one per platform image (several for an index).
    pub platforms: Vec<String>,
    /// The flags and ldflags as given (`.ko.yaml` or `--ldflags`, templates not applied).
    pub flags: Vec<String>,
    pub ldflags: Vec<String>,
    /// The `go build` arguments (flags and ldflags, templates applied).
    pub go_args: &'a [String],
    /// The `env` of `.ko.yaml` (the build's, else `defaultEnv`).
    pub config_env: &'a [String],
    /// The base image (or index) by name and digest.
    pub base: Option<(&'a str, &'a Digest)>,
    pub build_info: Option<&'a BuildInfo>,
    /// The commit the package's directory is checked out at, when Go did not stamp one.
    pub git_commit: Option<String>,
}

/// The predicate (`predicateType: https://slsa.dev/provenance/v1`).
pub fn predicate(run: &RunFacts, image: &ImageFacts<'_>) -> Value {
    let info = image.build_info;
    let setting = |key: &str| info.and_then(|i| i.settings.iter().find(|(k, _)| k == key)).map(|(_, v)| v.clone());
    let build_settings: serde_json::Map<String, Value> = info
        .map(|i| i.settings.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
        .unwrap_or_default();
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "importPath": image.import_path,
                "platforms": image.platforms,
                "tags": run.tags,
                "flags": image.flags,
                "ldflags": image.ldflags,
                "goBuildArgs": image.go_args,
            },
            "internalParameters": {
                "goVersion": info.map(|i| i.go_version.clone()),
                "GOFLAGS": run.goflags,
                "env": image.config_env,
                "goBuildSettings": build_settings,
            },
            "resolvedDependencies": dependencies(image, setting("vcs.revision").or(image.git_commit.clone()), setting("vcs")),
        },
        "runDetails": {
            "builder": { "id": run.builder_id },
            "metadata": { "startedOn": run.started, "finishedOn": run.finished },
        },
    })
}

/// [`predicate`], with `finishedOn` now when `SOURCE_DATE_EPOCH` did not fix it.
pub fn predicate_now(run: &RunFacts, image: &ImageFacts<'_>) -> Value {
    if !run.finished.is_empty() {
        return predicate(run, image);
    }
    let run = RunFacts { finished: crate::time::rfc3339(crate::time::now_unix()), ..run.clone() };
    predicate(&run, image)
}

/// An index's predicate: its first image's, naming every platform and the base index; when
/// the base has no index (each platform's base is an image of its own), every image's base.
pub fn for_index(images: &[&Value], platforms: Vec<String>, base: Option<(&str, &Digest)>) -> Option<Value> {
    let mut predicate = (*images.first()?).clone();
    predicate["buildDefinition"]["externalParameters"]["platforms"] = json!(platforms);
    let bases: Vec<Value> = match base {
        Some(base) => vec![base_dependency(base)],
        None => {
            let mut bases: Vec<Value> = Vec::new();
            let each = images.iter().filter_map(|p| p["buildDefinition"]["resolvedDependencies"].as_array());
            for found in each.flat_map(|deps| deps.iter().filter(|d| d["name"] == "base")) {
                if !bases.contains(found) {
                    bases.push(found.clone());
                }
            }
            bases
        }
    };
    if let Some(deps) = predicate["buildDefinition"]["resolvedDependencies"].as_array_mut() {
        deps.retain(|d| d["name"] != "base");
        deps.splice(0..0, bases);
    }
    Some(predicate)
}

/// The base as `oci://<repository>@<digest>`: the tag it was named by is left out.
fn base_dependency((name, digest): (&str, &Digest)) -> Value {
    let name = name.split('@').next().unwrap_or(name);
    let repo = match name.rsplit_once('/') {
        Some((registry_and_path, last)) => format!("{registry_and_path}/{}", last.split(':').next().unwrap_or(last)),
        None => name.split(':').next().unwrap_or(name).to_string(),
    };
    json!({ "name": "base", "uri": format!("oci://{repo}@{digest}"), "digest": { "sha256": digest.hex() } })
}

/// The base, the source commit, and every module compiled in (the main module first).
fn dependencies(image: &ImageFacts<'_>, revision: Option<String>, vcs: Option<String>) -> Vec<Value> {
    let mut deps = Vec::new();
    deps.extend(image.base.map(base_dependency));
    if let Some(revision) = revision {
        let key = if vcs.as_deref().unwrap_or("git") == "git" { "gitCommit" } else { "revision" };
        let main = image.build_info.and_then(|i| i.main.as_ref()).map(|m| m.path.as_str()).unwrap_or(image.import_path);
        deps.push(json!({ "name": "source", "uri": format!("git+{main}"), "digest": { key: revision } }));
    }
    if let Some(info) = image.build_info {
        deps.extend(info.main.iter().chain(&info.deps).map(module));
    }
    deps
}

/// A module as a resource descriptor: its purl, and the hash go.sum holds for it, also as the
/// in-toto `dirHash` (Go's dirhash in hex; not a SHA-256 of any file).
fn module(m: &Module) -> Value {
    let m = m.effective();
    let mut entry = json!({ "name": m.path, "uri": format!("pkg:golang/{}@{}", m.path, m.version) });
    if let Some(sum) = &m.sum {
        entry["annotations"] = json!({ "go.sum": sum });
    }
    if let Some(hex) = m.sha256_hex() {
        entry["digest"] = json!({ "dirHash": hex });
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::buildinfo;

    #[test]
    fn names_the_base_the_commit_the_toolchain_and_every_module() {
        let info = buildinfo::parse(
            "/a: go1.26.8\n\tpath\tex.com/app\n\tmod\tex.com/app\t(devel)\t\n\tdep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n\tbuild\tvcs=git\n\tbuild\tvcs.revision=abc123\n",
        );
        let base = Digest::of(b"base");
        let facts = ImageFacts {
            import_path: "ex.com/app",
            platforms: vec!["linux/amd64".into()],
            flags: vec!["-v".into()],
            ldflags: vec!["-X main.v={{.Env.V}}".into()],
            go_args: &["build".into(), "-trimpath".into()],
            config_env: &["FOO=1".into()],
            base: Some(("cgr.dev/chainguard/static:latest", &base)),
            build_info: Some(&info),
            git_commit: None,
        };
        let run = RunFacts { builder_id: "kubectl-ko".into(), ..Default::default() };
        let p = predicate(&run, &facts);
        let def = &p["buildDefinition"];
        assert_eq!(def["buildType"], BUILD_TYPE);
        assert_eq!(def["internalParameters"]["goVersion"], "go1.26.8");
        assert_eq!(def["externalParameters"]["ldflags"][0], "-X main.v={{.Env.V}}", "as given");
        let deps = def["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps[0]["digest"]["sha256"], base.hex());
        assert_eq!(deps[1]["digest"]["gitCommit"], "abc123");
        assert_eq!(deps[3]["uri"], "pkg:golang/github.com/google/uuid@v1.6.0");
        assert_eq!(deps[3]["digest"]["dirHash"], "348bda24330eb231c0f27d630212d2833ac0cf2d4782bfa136b6f9edefbde05d");
    }

    #[test]
    fn an_index_names_its_base_index_or_else_each_platforms_base() {
        let (amd, arm) = (Digest::of(b"amd"), Digest::of(b"arm"));
        let image = |base: (&str, &Digest)| {
            json!({ "buildDefinition": {
                "externalParameters": { "platforms": [] },
                "resolvedDependencies": [base_dependency(base), { "name": "source" }],
            }})
        };
        let (a, b) = (image(("r.io/base:v1", &amd)), image(("r.io/base:v1", &arm)));
        let p = for_index(&[&a, &b, &a], vec!["linux/amd64".into(), "linux/arm64".into()], None).unwrap();
        let deps = p["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
        let uris: Vec<&str> = deps.iter().map(|d| d["uri"].as_str().unwrap_or("")).collect();
        assert_eq!(uris, [format!("oci://r.io/base@{amd}"), format!("oci://r.io/base@{arm}"), String::new()]);

        let index = Digest::of(b"index");
        let p = for_index(&[&a, &b], vec![], Some(("localhost:5000/base:v1@sha256:x", &index))).unwrap();
        let deps = p["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0]["uri"], format!("oci://localhost:5000/base@{index}"));
        assert!(for_index(&[], vec![], None).is_none());
    }
}
