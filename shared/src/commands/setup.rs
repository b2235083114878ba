//! Turning parsed flags, `.ko.yaml` and the environment into the pieces a building command
//! needs: the builder and the publisher, with every bad setting reported before any work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Keychain;
use crate::base::BaseResolver;
use crate::builder::{Builder, BuilderSettings, ImageFlags};
use crate::cache::Cache;
use crate::cli::{self, BuildArgs, PublishArgs};
use crate::config::{KoConfig, check_image_user, check_metadata_key};
use crate::error::Error;
use crate::gobuild::{BuildFlags, GoTool, Package, PackageResolver};
use crate::image::Artifact;
use crate::media::daemon::{Docker, kind};
use crate::output;
use crate::platform::{Platform, PlatformRequest};
use crate::publish::{Naming, PublishSettings, Publisher};
use crate::registry::{ClientOptions, Reference, RegistryClient};
use crate::sbom::SbomFormat;
use crate::settings::Environment;
use crate::time::epoch;

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
        if crate::base::builtin::is_builtin(reference) || crate::media::layout::is_layout(reference) {
            continue;
        }
        Reference::parse(reference).map_err(|e| Error::usage(place, e.to_string()))?;
    }
    Ok(())
}

/// The platforms to build, by precedence: `--platform`, then `KO_DEFAULTPLATFORMS` or
/// `defaultPlatforms` (already merged into `config`), then `GOOS`/`GOARCH`/`GOARM`, else none
/// (the base decides).
fn platforms(args: &BuildArgs, config: &KoConfig, env: &Environment) -> Result<Option<PlatformRequest>, Error> {
    let given = args.platforms();
    let (values, source) = if !given.is_empty() {
        (given, "--platform")
    } else if !config.default_platforms.is_empty() {
        (config.default_platforms.clone(), "defaultPlatforms")
    } else {
        (vec![], "")
    };
    let go_vars: Vec<String> = ["GOOS", "GOARCH", "GOARM"]
        .iter()
        .filter_map(|k| env.text(k).filter(|v| !v.is_empty()).map(|v| format!("{k}={v}")))
        .collect();
    if !values.is_empty() {
        let source = match source {
            "--platform" => source.to_string(),
            _ if env.trimmed("KO_DEFAULTPLATFORMS").is_some() => "KO_DEFAULTPLATFORMS".to_string(),
            _ => format!("defaultPlatforms in {}", config.origin()),
        };
        if !go_vars.is_empty() {
            return Err(Error::usage(
                &source,
                format!(
                    "cannot be combined with {} in the environment; unset them or drop {source}",
                    go_vars.join(" ")
                ),
            ));
        }
        return Ok(Some(PlatformRequest::parse_from(&source, &values)?));
    }
    let set = |key: &str| env.text(key).filter(|v| !v.is_empty()).map(str::to_string);
    let (os, arch) = match (set("GOOS"), set("GOARCH")) {
        (None, None) => return Ok(None),
        (Some(os), Some(arch)) => (os, arch),
        // One of the two alone: Go fills in the other from its own settings, and the image
        // must be labelled with what Go builds (ko labels it linux/amd64 whatever Go built).
        (Some(os), None) => (os, go_env("GOARCH", env)?),
        (None, Some(arch)) => (go_env("GOOS", env)?, arch),
    };
    let mut spec = format!("{os}/{arch}");
    if let Some(arm) = set("GOARM")
        && arch.contains("arm")
    {
        spec.push_str(&format!("/v{arm}"));
    }
    // The platform comes from the environment: its error names the variables.
    let platform = Platform::parse(&spec).map_err(|e| Error::usage(go_vars.join(" "), e.to_string()))?;
    Ok(Some(PlatformRequest::List(vec![platform])))
}

/// What `go env KEY` says (`KO_GO_PATH`'s go, else go from PATH).
fn go_env(key: &str, env: &Environment) -> Result<String, Error> {
    let go = env.text("KO_GO_PATH").filter(|v| !v.is_empty()).unwrap_or("go");
    let failed = |detail: String| {
        Error::usage(
            if key == "GOOS" { "GOARCH" } else { "GOOS" },
            format!("set alone, and `{go} env {key}` {detail}; set both GOOS and GOARCH"),
        )
    };
    let out =
        std::process::Command::new(go).args(["env", key]).output().map_err(|e| failed(format!("did not run: {e}")))?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || value.is_empty() {
        return Err(failed(format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(value)
}

impl Session {
    /// Builds the packages and publishes their artifacts; returns the references in order.
    /// Pushing only to registries, each artifact goes up by digest as soon as it is built,
    /// while the others build; tags move only once every artifact is pushed, so a failure
    /// leaves no tag pointing at anything new. An error of a build comes with its package's
    /// index; a publishing error is an [`Error::Publish`].
    /// The packages `args` name, one per import path however each was named (`./cmd/a` and
    /// its import path), in argument order, as ko keys its results by import path.
    pub async fn distinct_packages(&self, args: &[&str]) -> Result<Vec<Package>, Error> {
        let mut packages = self.packages.resolve_all(args).await.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::new();
        packages.retain(|p| seen.insert(p.import_path.clone()));
        Ok(packages)
    }

    pub async fn build_and_publish(&self, packages: &[Package]) -> Result<Vec<String>, (usize, Error)> {
        let import_paths: Vec<&str> = packages.iter().map(|p| p.import_path.as_str()).collect();
        if self.builder.sbom_dir().is_some() {
            check_sbom_names(&import_paths).map_err(|e| (0, e))?;
        }
        if self.builder.debug() {
            check_debug_names(&import_paths).map_err(|e| (0, e))?;
        }
        let unindexed = |e: crate::publish::PublishError| (0, Error::from(e));
        if !self.publisher.publishes_as_built(&import_paths) {
            let artifacts = self.builder.build_all(packages).await?;
            let items: Vec<(&str, &Artifact)> = import_paths.iter().copied().zip(&artifacts).collect();
            return self.publisher.publish_all(&items).await.map_err(unindexed);
        }
        self.publisher.check_names(&import_paths).map_err(unindexed)?;
        let published = self
            .builder
            .build_all_then(packages, |i, artifact| {
                let import_path = import_paths[i];
                async move { Ok(self.publisher.publish_built(import_path, &artifact).await?) }
            })
            .await?;
        self.publisher.finish(published).await.map_err(unindexed)
    }

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
        let cwd = std::env::current_dir().map_err(|e| {
            Error::usage("working directory", format!("{e}; run from a directory that exists (was it removed?)"))
        })?;
        // Every setting is read here, once, and checked before anything is built or sent.
        let env = Environment::process();
        let source_date = epoch(env, "SOURCE_DATE_EPOCH")?;
        let kodata_date = epoch(env, "KO_DATA_DATE_EPOCH")?;
        let config = KoConfig::load(&cwd, env)?;
        check_base_references(&config)?;
        let request = platforms(build, &config, env)?;
        let image = image_flags(build)?;
        let sbom = SbomFormat::parse(&build.sbom).map_err(|detail| Error::usage("--sbom", detail))?;
        let jobs = jobs(build);
        // With --sbom=none no SBOM is written: the directory is neither made nor checked, as in ko.
        let sbom_dir = if sbom.is_some() { sbom_dir(build)? } else { None };

        let cache = Cache::open(env)?;
        let keychain = Keychain::new(env)?;
        let options = ClientOptions::new(publish.insecure_registry, &publish.registry_ca_file, env)?;
        let client = Arc::new(RegistryClient::new(keychain, options)?);
        let docker = Docker::new(env);
        let (sign, provenance) = super::signing::settings(publish, &config, env, source_date)?;
        let mut settings = publish_settings(publish, jobs, env, docker.clone());
        settings.sign = sign;
        let publisher = Publisher::new(settings, client.clone(), cache.clone())?;
        publisher.prepare().await?;
        let publisher = Arc::new(publisher);
        let flags = BuildFlags {
            ldflags: build.ldflags(),
            disable_optimizations: build.disable_optimizations,
            debug: build.debug,
        };
        let exe = std::env::current_exe();
        let go = GoTool::new(env);
        let cache_prog = super::gocache::program_for_builds(&go, &cwd, publish, exe, env).await?;
        let go = go.with_cache_prog(cache_prog, cache.root());
        let packages = PackageResolver::new(go.clone(), cwd, &config, Some(cache.clone())).await?;
        let bases = BaseResolver::new(client, cache.clone(), docker);
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
            sbom_dir,
            provenance,
            source_date,
            kodata_date,
            kodata_root: env.path("KO_DATA_PATH_ALLOWED_ROOT"),
        };
        let builder = Builder::new(settings, publisher.clone());
        Ok(Session { builder, publisher, packages })
    }
}

/// `--sbom-dir` names its files after the binary (`<name>-<platform>.<ext>`), as ko does: two
/// packages whose binaries share a name (`svc1/cmd/server`, `svc2/cmd/server`) would write the
/// same files and lose one SBOM (ko loses it silently), so that is refused before any build.
fn check_sbom_names(import_paths: &[&str]) -> Result<(), Error> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for import_path in import_paths {
        let name = crate::assemble::app::binary_name(import_path);
        match seen.insert(name.clone(), import_path) {
            Some(other) if other != *import_path => {
                return Err(Error::usage(
                    "--sbom-dir",
                    format!(
                        "{other} and {import_path} both make a binary named {name}, so their SBOMs would go to the same files ({name}-<platform>.*) and one would be lost; build them in separate runs, each with its own --sbom-dir"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `--debug` puts Delve at `/ko-app/dlv` beside the app (as ko does): an app whose binary is
/// named `dlv` would be replaced by it, and the image would debug Delve. Refused up front.
fn check_debug_names(import_paths: &[&str]) -> Result<(), Error> {
    let delve = crate::gobuild::delve::PATH_IN_IMAGE.rsplit('/').next().unwrap_or_default();
    match import_paths.iter().find(|p| crate::assemble::app::binary_name(p) == delve) {
        Some(import_path) => Err(Error::usage(
            "--debug",
            format!(
                "{import_path} makes a binary named {delve}, the name Delve has in a debug image (/ko-app/{delve}); rename the package's directory to build it with --debug"
            ),
        )),
        None => Ok(()),
    }
}

/// `--image-label`, `--image-annotation` and `--image-user`, checked.
fn image_flags(build: &BuildArgs) -> Result<ImageFlags, Error> {
    let image = ImageFlags {
        labels: key_values("--image-label", "invalid label flag", &build.labels())?,
        annotations: key_values("--image-annotation", "missing '=' in annotation", &build.annotations())?,
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

/// The publish flags, `KO_DOCKER_REPO`, `COSIGN_REPOSITORY` and `KIND_CLUSTER_NAME`.
fn publish_settings(publish: &PublishArgs, jobs: usize, env: &Environment, docker: Docker) -> PublishSettings {
    if publish.base_import_paths && publish.bare && !publish.preserve_import_paths {
        output::warn(
            "--base-import-paths and --bare are both set; --base-import-paths is used and --bare is ignored (drop one)",
        );
    }
    let naming = if publish.preserve_import_paths {
        Naming::PreserveImportPaths
    } else if publish.base_import_paths {
        Naming::BaseImportPaths
    } else if publish.bare {
        Naming::Bare
    } else {
        Naming::Md5
    };
    let var = |key: &str| env.text(key);
    PublishSettings {
        // A trailing slash (`registry/team/`) is accepted, and so are empty and `.` path
        // elements (`registry//team`), as ko accepts them.
        docker_repo: var("KO_DOCKER_REPO")
            .map(|v| crate::publish::naming::clean_repo(v.trim(), naming))
            .filter(|v| !v.is_empty()),
        tags: publish.tags(),
        tag_only: publish.tag_only,
        push: publish.push,
        oci_layout_path: cli::given_path(&publish.oci_layout_path),
        tarball: cli::given_path(&publish.tarball),
        image_refs: cli::given_path(&publish.image_refs),
        naming,
        jobs: jobs.max(4),
        sbom_repository: var("COSIGN_REPOSITORY").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
        local: publish.local,
        docker,
        kind_cluster: kind::cluster_name(env),
        sign: None,
    }
}

/// `--sbom-dir`, made and checked before anything is built: a directory that cannot be
/// written would otherwise fail the run after its images were pushed.
fn sbom_dir(build: &BuildArgs) -> Result<Option<PathBuf>, Error> {
    let Some(dir) = cli::given_path(&build.sbom_dir) else { return Ok(None) };
    let bad = |e: std::io::Error| {
        Error::usage("--sbom-dir", format!("{}: {e}; give a directory you can write to", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(bad)?;
    tempfile::tempfile_in(&dir).map_err(bad)?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        build: BuildArgs,
    }

    /// The platforms `flags` and `env` ask for, with `ko_yaml` as the working directory's `.ko.yaml`.
    fn requested(flags: &[&str], env: &[(&str, &str)], ko_yaml: &str) -> Result<Option<PlatformRequest>, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".ko.yaml"), ko_yaml).unwrap();
        let env = Environment::from_pairs(env.iter().copied());
        let args = Flags::try_parse_from(std::iter::once("build").chain(flags.iter().copied())).unwrap().build;
        let config = KoConfig::load(dir.path(), &env).unwrap();
        platforms(&args, &config, &env).map_err(|e| e.to_string())
    }

    fn list(specs: &[&str]) -> Result<Option<PlatformRequest>, String> {
        Ok(Some(PlatformRequest::List(specs.iter().map(|s| Platform::parse(s).unwrap()).collect())))
    }

    #[test]
    fn the_flag_beats_the_environment_which_beats_ko_yaml() {
        let yaml = "defaultPlatforms: [linux/s390x]\n";
        let env = [("KO_DEFAULTPLATFORMS", "linux/arm64")];
        assert_eq!(requested(&["--platform=linux/ppc64le"], &env, yaml), list(&["linux/ppc64le"]));
        assert_eq!(requested(&[], &env, yaml), list(&["linux/arm64"]));
        assert_eq!(requested(&[], &[], yaml), list(&["linux/s390x"]));
        assert_eq!(requested(&[], &[], ""), Ok(None));
    }

    #[test]
    fn an_empty_platform_is_named_by_where_it_was_set() {
        let err = requested(&["--platform=,"], &[], "").unwrap_err();
        assert!(err.starts_with("--platform"), "{err}");
        // An empty --platform is no platform at all, as in pflag: the defaults decide.
        assert_eq!(requested(&["--platform="], &[], "defaultPlatforms: linux/s390x\n"), list(&["linux/s390x"]));
        let err = requested(&[], &[], "defaultPlatforms: ['']\n").unwrap_err();
        assert!(err.starts_with("defaultPlatforms in "), "{err}");
    }

    #[test]
    fn goos_and_goarch_choose_the_platform_only_when_nothing_else_does() {
        let go = [("GOOS", "linux"), ("GOARCH", "arm"), ("GOARM", "7")];
        assert_eq!(requested(&[], &go, ""), list(&["linux/arm/v7"]));
        let err = requested(&["--platform=linux/amd64"], &go, "").unwrap_err();
        assert!(err.contains("cannot be combined with GOOS=linux GOARCH=arm GOARM=7"), "{err}");
        let err = requested(&[], &go, "defaultPlatforms: [linux/amd64]\n").unwrap_err();
        assert!(err.starts_with("defaultPlatforms"), "{err}");
        // Each error names where the platforms came from.
        let from_env = [("KO_DEFAULTPLATFORMS", "linux/arm64"), ("GOARCH", "amd64")];
        let err = requested(&[], &from_env, "").unwrap_err();
        assert!(err.starts_with("KO_DEFAULTPLATFORMS: cannot be combined with GOARCH=amd64"), "{err}");
        let err = requested(&[], &[("GOOS", "linux"), ("GOARCH", "bogus")], "").unwrap_err();
        assert!(err.starts_with("GOOS=linux GOARCH=bogus: unknown platform"), "{err}");
    }
}
