//! Turning parsed flags, `.ko.yaml` and the environment into the pieces a building command
//! needs: the builder and the publisher, with every bad setting reported before any work.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::Keychain;
use crate::base::BaseResolver;
use crate::builder::{Builder, BuilderSettings, ImageFlags};
use crate::cache::Cache;
use crate::cli::{BuildArgs, PublishArgs};
use crate::config::{KoConfig, check_image_user, check_metadata_key};
use crate::error::Error;
use crate::gobuild::{BuildFlags, GoTool, PackageResolver};
use crate::platform::{Platform, PlatformRequest};
use crate::publish::{Naming, PublishSettings, Publisher};
use crate::registry::{ClientOptions, Reference, RegistryClient, ca_files_with_env};
use crate::sbom::SbomFormat;
use crate::time::epoch_from_env;

/// Everything one building command run needs.
pub struct Session {
    pub builder: Builder,
    pub publisher: Arc<Publisher>,
    pub packages: PackageResolver,
}

/// `key=value` items of `--image-label` / `--image-annotation`; `what` words the error as ko does.
fn key_values(flag: &str, what: &str, items: &[String]) -> Result<BTreeMap<String, String>, Error> {
    items
        .iter()
        .filter(|i| !i.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                check_metadata_key(k).map_err(|detail| Error::usage(flag, format!("{item:?}: {detail}")))?;
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(Error::usage(flag, format!("{what}: {item:?}; use key=value"))),
        })
        .collect()
}

/// Checks the configured base images (`defaultBaseImage`, `baseImageOverrides`,
/// `KO_DEFAULTBASEIMAGE`) before anything is fetched: a bad one is named with where it is set.
fn check_base_references(config: &KoConfig) -> Result<(), Error> {
    for (place, reference) in config.base_references() {
        if crate::base::builtin::is_builtin(reference) || crate::base::layout::is_layout(reference) {
            continue;
        }
        Reference::parse(reference).map_err(|e| Error::usage(place, e.to_string()))?;
    }
    Ok(())
}

fn platforms(args: &BuildArgs, config: &KoConfig) -> Result<Option<PlatformRequest>, Error> {
    let (values, source) = if !args.platform.is_empty() {
        (args.platform.clone(), "--platform")
    } else if !config.default_platforms.is_empty() {
        (config.default_platforms.clone(), "defaultPlatforms")
    } else {
        (vec![], "")
    };
    let go_vars: Vec<String> = ["GOOS", "GOARCH", "GOARM"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| format!("{k}={v}")))
        .collect();
    if !values.is_empty() {
        if !go_vars.is_empty() {
            return Err(Error::usage(
                source,
                format!(
                    "cannot be combined with {} in the environment; unset them or drop {source}",
                    go_vars.join(" ")
                ),
            ));
        }
        let source = match source {
            "--platform" => source.to_string(),
            _ if std::env::var("KO_DEFAULTPLATFORMS").is_ok_and(|v| !v.trim().is_empty()) => {
                "KO_DEFAULTPLATFORMS".to_string()
            }
            _ => format!("defaultPlatforms in {}", config.origin()),
        };
        return Ok(Some(PlatformRequest::parse_from(&source, &values)?));
    }
    let set = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let (os, arch) = match (set("GOOS"), set("GOARCH")) {
        (None, None) => return Ok(None),
        (Some(os), Some(arch)) => (os, arch),
        // One of the two alone: Go fills in the other from its own settings, and the image
        // must be labelled with what Go builds (ko labels it linux/amd64 whatever Go built).
        (Some(os), None) => (os, go_env("GOARCH")?),
        (None, Some(arch)) => (go_env("GOOS")?, arch),
    };
    let mut spec = format!("{os}/{arch}");
    if let Some(arm) = set("GOARM")
        && arch.contains("arm")
    {
        spec.push_str(&format!("/v{arm}"));
    }
    Ok(Some(PlatformRequest::List(vec![Platform::parse(&spec)?])))
}

/// What `go env KEY` says (`KO_GO_PATH`'s go, else go from PATH).
fn go_env(key: &str) -> Result<String, Error> {
    let go = std::env::var("KO_GO_PATH").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "go".into());
    let failed = |detail: String| {
        Error::usage(
            if key == "GOOS" { "GOARCH" } else { "GOOS" },
            format!("set alone, and `{go} env {key}` {detail}; set both GOOS and GOARCH"),
        )
    };
    let out =
        std::process::Command::new(&go).args(["env", key]).output().map_err(|e| failed(format!("did not run: {e}")))?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || value.is_empty() {
        return Err(failed(format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(value)
}

impl Session {
    /// The session of `resolve` and `apply`, which print on stdout: `--tarball -` is refused.
    pub async fn new(publish: &PublishArgs, build: &BuildArgs) -> Result<Session, Error> {
        if let Some(path) = publish.tarball.as_deref().filter(|p| crate::publish::tarball_to_stdout(p)) {
            return Err(Error::usage(
                format!("--tarball {}", path.display()),
                "only `kubectl ko build` can write the tarball to stdout (this command prints there); name a file",
            ));
        }
        Self::create(publish, build).await
    }

    /// The session of `build`, which may give stdout to `--tarball -` and print the
    /// references on stderr instead.
    pub async fn for_build(publish: &PublishArgs, build: &BuildArgs) -> Result<Session, Error> {
        Self::create(publish, build).await
    }

    async fn create(publish: &PublishArgs, build: &BuildArgs) -> Result<Session, Error> {
        let _span = crate::timing::span(|| "session setup".to_string());
        let cwd = std::env::current_dir().map_err(|e| Error::usage("working directory", e.to_string()))?;
        // Every setting is checked here, before anything is built or sent anywhere.
        let source_date = epoch_from_env("SOURCE_DATE_EPOCH")?;
        let kodata_date = epoch_from_env("KO_DATA_DATE_EPOCH")?;
        let config = KoConfig::load(&cwd)?;
        check_base_references(&config)?;
        let request = platforms(build, &config)?;
        let image = image_flags(build)?;
        let sbom = SbomFormat::parse(&build.sbom).map_err(|detail| Error::usage("--sbom", detail))?;
        let jobs = jobs(build);

        let cache = Cache::from_env()?;
        let keychain = Keychain::from_env()?;
        let options = ClientOptions {
            insecure: publish.insecure_registry,
            ca_files: ca_files_with_env(&publish.registry_ca_file),
        };
        let client = Arc::new(RegistryClient::new(keychain, options)?);
        let publisher = Publisher::new(publish_settings(publish, jobs), client.clone(), cache.clone())?;
        publisher.prepare().await?;
        let publisher = Arc::new(publisher);
        let flags = BuildFlags {
            ldflags: build.ldflags.clone(),
            disable_optimizations: build.disable_optimizations,
            debug: build.debug,
        };
        let go = GoTool::from_env();
        let packages = PackageResolver::new(go.clone(), cwd, &config, Some(cache.clone())).await?;
        let bases = BaseResolver::new(client, cache.clone());
        let settings = BuilderSettings {
            config,
            go,
            cache,
            bases,
            platforms: request,
            flags,
            image,
            jobs,
            sbom,
            sbom_dir: build.sbom_dir.clone().filter(|d| !d.as_os_str().is_empty()),
            source_date,
            kodata_date,
        };
        let builder = Builder::new(settings, publisher.clone());
        Ok(Session { builder, publisher, packages })
    }
}

/// `--image-label`, `--image-annotation` and `--image-user`, checked.
fn image_flags(build: &BuildArgs) -> Result<ImageFlags, Error> {
    let image = ImageFlags {
        labels: key_values("--image-label", "invalid label flag", &build.image_label)?,
        annotations: key_values("--image-annotation", "missing '=' in annotation", &build.image_annotation)?,
        user: build.image_user.clone().filter(|u| !u.is_empty()),
    };
    if let Some(user) = &image.user {
        check_image_user(user).map_err(|detail| Error::usage("--image-user", format!("{user:?}: {detail}")))?;
    }
    Ok(image)
}

/// `-j`, where 0 means one per core.
fn jobs(build: &BuildArgs) -> usize {
    if build.jobs == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) } else { build.jobs }
}

/// The publish flags, `KO_DOCKER_REPO` and `COSIGN_REPOSITORY`.
fn publish_settings(publish: &PublishArgs, jobs: usize) -> PublishSettings {
    let naming = if publish.preserve_import_paths {
        Naming::PreserveImportPaths
    } else if publish.base_import_paths {
        Naming::BaseImportPaths
    } else if publish.bare {
        Naming::Bare
    } else {
        Naming::Md5
    };
    let env = |key: &str| std::env::var(key).ok();
    PublishSettings {
        // A trailing slash (`registry/team/`) is accepted, as ko accepts it.
        docker_repo: env("KO_DOCKER_REPO")
            .map(|v| v.trim().trim_end_matches('/').to_string())
            .filter(|v| !v.is_empty()),
        tags: publish.tags.clone(),
        tag_only: publish.tag_only,
        push: publish.push,
        oci_layout_path: publish.oci_layout_path.clone(),
        tarball: publish.tarball.clone(),
        image_refs: publish.image_refs.clone(),
        naming,
        jobs: jobs.max(4),
        sbom_repository: env("COSIGN_REPOSITORY").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
        local: publish.local,
    }
}
