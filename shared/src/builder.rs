//! One import path to one artifact: pick the base, build the kodata layer once, then for each
//! platform run `go build`, wrap the binary in its layer and assemble the image; several
//! platforms make an index. Shared by every command that builds.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::try_join_all;
use tokio::sync::{OnceCell, Semaphore};

use crate::assemble::image::{self as assemble, AddedLayer, ImageSettings};
use crate::assemble::layer::LayerRecord;
use crate::assemble::{app, kodata};
use crate::base::{BaseError, BaseResolver, BaseSet, builtin};
use crate::cache::Cache;
use crate::config::KoConfig;
use crate::digest::Digest;
use crate::error::Error;
use crate::gobuild::{BuildFlags, BuildPlan, Built, GoTool, Package, delve, exec_name};
use crate::image::caps::{self, FileCaps};
use crate::image::sink::{LayerSink, NoSink};
use crate::image::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, Artifact, Image, IndexImage};
use crate::output;
use crate::platform::{Platform, PlatformRequest};
use crate::sbom::{self, BaseRef, SbomFormat};
use crate::time::{epoch_from_env, rfc3339};
use crate::timing;

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What the sink is told once a streamed layer is complete.
type LayerDone = Box<dyn FnOnce(&Digest) + Send>;

/// Image settings from flags that apply to every image of the run.
#[derive(Clone, Debug, Default)]
pub struct ImageFlags {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub user: Option<String>,
}

pub struct Builder {
    pub config: KoConfig,
    pub go: GoTool,
    pub cache: Cache,
    pub bases: BaseResolver,
    pub platforms: Option<PlatformRequest>,
    pub flags: BuildFlags,
    pub image: ImageFlags,
    pub jobs: Arc<Semaphore>,
    /// `--sbom` (`None` for `none`) and `--sbom-dir`.
    pub sbom: Option<SbomFormat>,
    pub sbom_dir: Option<PathBuf>,
    source_date: Option<i64>,
    kodata_date: Option<i64>,
    delve: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<LayerRecord>>>>,
    sink: Arc<dyn LayerSink>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: KoConfig,
        go: GoTool,
        cache: Cache,
        bases: BaseResolver,
        platforms: Option<PlatformRequest>,
        flags: BuildFlags,
        image: ImageFlags,
        jobs: usize,
    ) -> Result<Builder, Error> {
        Ok(Builder {
            config,
            go,
            cache,
            bases,
            platforms,
            flags,
            image,
            jobs: Arc::new(Semaphore::new(jobs.max(1))),
            sbom: Some(SbomFormat::Spdx),
            sbom_dir: None,
            source_date: epoch_from_env("SOURCE_DATE_EPOCH")?,
            kodata_date: epoch_from_env("KO_DATA_DATE_EPOCH")?,
            delve: Default::default(),
            sink: Arc::new(NoSink),
        })
    }

    /// Tells `sink` (the publisher) of layers while they are made.
    pub fn with_sink(mut self, sink: Arc<dyn LayerSink>) -> Builder {
        self.sink = sink;
        self
    }

    /// Sets the SBOM format (`None` disables SBOMs) and the directory SBOMs are also written to.
    pub fn with_sbom(mut self, format: Option<SbomFormat>, dir: Option<PathBuf>) -> Builder {
        self.sbom = format;
        self.sbom_dir = dir;
        self
    }

    pub fn base_reference(&self, import_path: &str) -> String {
        self.config.base_for(import_path).unwrap_or(builtin::BUILTIN_BASE).to_string()
    }

    /// Builds the artifact for one package.
    pub async fn build(&self, package: &Package) -> Result<Artifact, Error> {
        let mut artifacts = self.build_all(std::slice::from_ref(package)).await.map_err(|(_, e)| e)?;
        Ok(artifacts.remove(0))
    }

    /// Builds the artifacts for several packages, in their order. Packages built with the
    /// same settings share one `go build`, which checks their common dependencies once. An
    /// error comes with the index of the package it belongs to.
    pub async fn build_all(&self, packages: &[Package]) -> Result<Vec<Artifact>, (usize, Error)> {
        let bases = try_join_all(packages.iter().enumerate().map(|(i, p)| async move {
            let base_ref = self.base_reference(&p.import_path);
            let _span = timing::span(|| format!("base lookup {base_ref}"));
            self.bases.images(&base_ref, self.platforms.as_ref()).await.map_err(|e| (i, e.into()))
        }))
        .await?;
        self.check_base_layers_early(packages, &bases);
        let plans = try_join_all(packages.iter().zip(&bases).enumerate().map(|(i, (p, set))| async move {
            try_join_all(set.images.iter().map(|base| self.go.plan(p, &base.platform, &self.config, &self.flags)))
                .await
                .map_err(|e| (i, e.into()))
        }))
        .await?;
        let prebuilt = self.prebuild(packages, &bases, &plans).await?;
        try_join_all(packages.iter().enumerate().map(|(i, p)| {
            let prebuilt = &prebuilt;
            let (bases, plans) = (&bases[i], &plans[i]);
            async move { self.build_one(p, bases, plans, |k| prebuilt.get(&(i, k)).cloned()).await.map_err(|e| (i, e)) }
        }))
        .await
    }

    /// Starts checking, while Go builds, whether each image's repository already holds its
    /// base layers, so that pushing need not ask again afterwards.
    fn check_base_layers_early(&self, packages: &[Package], bases: &[BaseSet]) {
        for (package, set) in packages.iter().zip(bases) {
            let digests: Vec<&Digest> =
                set.images.iter().flat_map(|b| &b.layers).map(|l| &l.descriptor.digest).collect();
            self.sink.expect(&package.import_path, &digests);
        }
    }

    /// One `go build` for each group of (package, platform) that share a build plan, when
    /// the group has more than one member. Members whose binary is not returned (the shared
    /// build failed) are built alone afterwards, which reports their errors.
    async fn prebuild(
        &self,
        packages: &[Package],
        bases: &[BaseSet],
        plans: &[Vec<BuildPlan>],
    ) -> Result<HashMap<(usize, usize), Built>, (usize, Error)> {
        // Group by plan, then split so that no two members of a group share a binary name.
        let mut groups: Vec<(&BuildPlan, Vec<(usize, usize)>)> = Vec::new();
        for (i, (set, plans)) in bases.iter().zip(plans).enumerate() {
            for (k, (base, plan)) in set.images.iter().zip(plans).enumerate() {
                let name = exec_name(&packages[i].import_path, &base.platform);
                let clash = |members: &Vec<(usize, usize)>| {
                    members
                        .iter()
                        .any(|&(j, l)| exec_name(&packages[j].import_path, &bases[j].images[l].platform) == name)
                };
                match groups.iter_mut().find(|(p, members)| *p == plan && !clash(members)) {
                    Some((_, members)) => members.push((i, k)),
                    None => groups.push((plan, vec![(i, k)])),
                }
            }
        }
        let results = try_join_all(groups.into_iter().filter(|(_, m)| m.len() > 1).map(|(plan, members)| async move {
            let _permit = self.jobs.acquire().await.expect("semaphore open");
            let items: Vec<(&Package, &Platform)> =
                members.iter().map(|&(i, k)| (&packages[i], &bases[i].images[k].platform)).collect();
            for (package, platform) in &items {
                output::step(format!("Building {} for {platform}", package.import_path));
            }
            let _span = timing::span(|| format!("go build of {} packages", items.len()));
            let built = self.go.build_many(&items, plan, &self.cache).await.map_err(|e| (members[0].0, e.into()))?;
            if built.is_some() {
                output::detail(format!("ran {} in {}", plan.args.join(" "), plan.dir.display()));
            }
            Ok::<_, (usize, Error)>(built.map(|b| members.into_iter().zip(b).collect::<Vec<_>>()).unwrap_or_default())
        }))
        .await?;
        Ok(results.into_iter().flatten().collect())
    }

    /// Builds one package's artifact on its bases with its plans (one per base), taking the
    /// binaries `prebuilt` has (by platform index) and running `go build` for the rest.
    async fn build_one(
        &self,
        package: &Package,
        bases: &BaseSet,
        plans: &[BuildPlan],
        prebuilt: impl Fn(usize) -> Option<Built>,
    ) -> Result<Artifact, Error> {
        let first = bases.images.first().ok_or_else(|| BaseError::Invalid {
            reference: self.base_reference(&package.import_path),
            detail: "no image matched".into(),
        })?;
        output::step(format!("Using base {} for {}", bases.shown, package.import_path));
        if let Some(b) = &package.config {
            output::detail(format!("Using build config {} for {}", b.id, package.import_path));
        }

        let kodata_mtime = self.kodata_date.unwrap_or(0).max(0) as u64;
        let cache = self.cache.clone();
        let dir = package.dir.clone();
        let permit = self.jobs.acquire().await.expect("semaphore open");
        let kodata = tokio::task::spawn_blocking(move || kodata::build_layer(&cache, &dir, kodata_mtime))
            .await
            .expect("kodata task")?;
        drop(permit);
        self.sink.expect(&package.import_path, &[&kodata.digest]);
        let name = app::binary_name(&package.import_path);
        let created_by = format!("kubectl-ko build ko://{}", package.import_path);
        let settings = self.settings_for(package, &name);
        let file_caps = match package.config.as_ref().and_then(|b| b.linux_capabilities.as_ref()) {
            Some(terms) => FileCaps::parse(terms)?.xattr(),
            None => None,
        };

        let images = try_join_all(bases.images.iter().zip(plans).enumerate().map(|(k, (base, plan))| {
            let prebuilt = prebuilt(k);
            let kodata = kodata.clone();
            let name = name.clone();
            let created_by = created_by.clone();
            let settings = settings.clone();
            let file_caps = &file_caps;
            async move {
                // One of the `-j` slots for the build and everything that holds files, pipes
                // or connections for this image (Go's build info, the layer and its upload),
                // so that what is open at once is bounded by `-j`, not by the number of images.
                let permit = self.jobs.acquire().await.expect("semaphore open");
                let binary = match prebuilt {
                    Some(built) => built,
                    None => {
                        output::step(format!("Building {} for {}", package.import_path, base.platform));
                        let _span = timing::span(|| format!("go build {} for {}", package.import_path, base.platform));
                        let (binary, cmdline) = self.go.build(package, &base.platform, plan, &self.cache).await?;
                        output::detail(format!("ran {} in {}", cmdline.join(" "), plan.dir.display()));
                        binary
                    }
                };
                let binary_path = binary.path.clone();
                let build_info = async {
                    match self.sbom {
                        Some(_) => sbom::buildinfo::read(self.go.program(), &binary_path).await.map(Some),
                        None => Ok(None),
                    }
                };
                let cache = self.cache.clone();
                let layer_name = name.clone();
                // File capabilities are a Linux notion; other platforms get the plain binary.
                let xattrs: Vec<(String, Vec<u8>)> = match &file_caps {
                    Some(value) if base.platform.os == "linux" => vec![(caps::XATTR.to_string(), value.clone())],
                    _ => vec![],
                };
                let span = timing::span(|| format!("binary layer {} for {}", package.import_path, base.platform));
                let done: Arc<std::sync::Mutex<Option<LayerDone>>> = Default::default();
                let start_copy = {
                    let (done, sink, import_path) = (done.clone(), self.sink.clone(), package.import_path.clone());
                    move || {
                        let stream = sink.stream(&import_path)?;
                        *done.lock().expect("stream lock") = Some(stream.done);
                        Some(stream.copy)
                    }
                };
                let layer = tokio::task::spawn_blocking(move || {
                    app::built_binary_layer(&cache, &binary, &layer_name, &xattrs, &start_copy)
                });
                let (record, build_info) = tokio::join!(layer, build_info);
                let (record, build_info) = (record.expect("layer task")?, build_info?);
                drop(span);
                let done = done.lock().expect("stream lock").take();
                if let Some(done) = done {
                    done(&record.digest);
                }
                drop(permit);
                let mut settings = settings;
                let mut layers = vec![
                    AddedLayer {
                        record: kodata,
                        created_by: created_by.clone(),
                        comment: format!("kodata contents, at $KO_DATA_PATH ({})", kodata::KO_DATA_PATH),
                        created: self.kodata_date.map(rfc3339).unwrap_or_else(|| ZERO_TIME.into()),
                    },
                    AddedLayer {
                        record,
                        created_by,
                        comment: format!("go build output, at {}", app::entrypoint(&name)),
                        created: self.source_date.map(rfc3339).unwrap_or_else(|| ZERO_TIME.into()),
                    },
                ];
                if self.flags.debug {
                    if let Some(record) = self.delve_layer(&base.platform).await? {
                        layers.push(AddedLayer {
                            record,
                            created_by: format!("kubectl-ko build ko://{}", package.import_path),
                            comment: format!("Delve debugger, at {}", delve::PATH_IN_IMAGE),
                            created: self.source_date.map(rfc3339).unwrap_or_else(|| ZERO_TIME.into()),
                        });
                        settings.entrypoint = delve::entrypoint(&app::entrypoint(&name));
                    } else {
                        output::warn(format!(
                            "image for platform {} will be built without debugging enabled because Delve does not support that platform",
                            base.platform
                        ));
                    }
                }
                let mut image = assemble::assemble(&self.cache, base, &layers, &settings)?;
                if let (Some(format), Some(info)) = (self.sbom, &build_info) {
                    let base_ref = BaseRef { name: base.name.clone(), digest: base.digest.clone() };
                    let doc = sbom::for_image(
                        format,
                        &sbom::ImageFacts {
                            digest: &image.digest,
                            media_type: &image.media_type,
                            created: created_of(&image).as_deref(),
                            base: Some(base_ref),
                            build_info: info,
                        },
                    );
                    self.write_sbom(&name, Some(&image), &doc)?;
                    image.sbom = Some(attached(doc));
                }
                Ok::<_, Error>(image)
            }
        }))
        .await?;

        if images.len() == 1 {
            return Ok(Artifact::Image(images.into_iter().next().expect("one image")));
        }
        let mut annotations = settings.annotations.clone();
        let family = first.family;
        match &bases.index {
            Some((name, digest, _)) => {
                annotations.insert(ANNOTATION_BASE_NAME.into(), name.clone());
                annotations.insert(ANNOTATION_BASE_DIGEST.into(), digest.to_string());
            }
            None => {
                annotations.insert(ANNOTATION_BASE_NAME.into(), first.name.clone());
            }
        }
        let descriptors: Vec<_> = bases.images.iter().map(|b| b.descriptor.clone()).collect();
        let mut index = IndexImage::new(family, images, annotations, &descriptors);
        if let Some(format) = self.sbom {
            let base =
                bases.index.as_ref().map(|(name, digest, _)| BaseRef { name: name.clone(), digest: digest.clone() });
            let doc = index_sbom(format, &index, base);
            self.write_sbom(&name, None, &doc)?;
            index.sbom = Some(attached(doc));
        }
        Ok(Artifact::Index(index))
    }

    /// Image settings for one package: `.ko.yaml`'s `image:` (top level, then the package's
    /// build entry), then the flags.
    fn settings_for(&self, package: &Package, name: &str) -> ImageSettings {
        let mut image = self.config.image.clone();
        if let Some(build) = &package.config {
            image = image.overlaid(&build.image);
        }
        image.labels.extend(self.image.labels.clone());
        image.annotations.extend(self.image.annotations.clone());
        ImageSettings {
            entrypoint: vec![app::entrypoint(name)],
            env: image.env,
            working_dir: image.working_dir,
            labels: image.labels,
            annotations: image.annotations,
            user: self.image.user.clone().or(image.user),
            created: self.source_date.map(rfc3339),
        }
    }

    /// `--sbom-dir`: `<app>-<platform>.<ext>` for an image, `<app>-index.<ext>` for an index.
    fn write_sbom(&self, app: &str, image: Option<&Image>, sbom: &sbom::Sbom) -> Result<(), Error> {
        let Some(dir) = &self.sbom_dir else { return Ok(()) };
        let file = sbom::file_name(app, image.map(|i| &i.platform), sbom.format);
        output::step(format!("Writing SBOM to {}", dir.join(&file).display()));
        sbom::write_to_dir(dir, &file, sbom)?;
        Ok(())
    }

    /// The `/ko-app/dlv` layer for a platform Delve supports (built once per platform per run).
    async fn delve_layer(&self, platform: &Platform) -> Result<Option<LayerRecord>, Error> {
        if !delve::supports(platform) {
            return Ok(None);
        }
        let cell = self.delve.lock().await.entry(platform.to_string()).or_default().clone();
        let record = cell
            .get_or_try_init(|| async {
                let _permit = self.jobs.acquire().await.expect("semaphore open");
                let binary = self.go.delve(&self.cache, platform).await?;
                let cache = self.cache.clone();
                let record = tokio::task::spawn_blocking(move || app::binary_layer(&cache, &binary, "dlv"))
                    .await
                    .expect("layer task")?;
                Ok::<_, Error>(record)
            })
            .await?;
        Ok(Some(record.clone()))
    }
}

/// An SBOM as the image model holds it.
fn attached(doc: sbom::Sbom) -> crate::image::Sbom {
    crate::image::Sbom { media_type: doc.media_type(), bytes: doc.bytes }
}

/// The config's `created`, which dates the SBOM as ko dates it.
fn created_of(image: &Image) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes).ok()?;
    config["created"].as_str().map(str::to_string)
}

fn index_sbom(format: SbomFormat, index: &IndexImage, base: Option<BaseRef>) -> sbom::Sbom {
    let created = index.images.first().and_then(created_of);
    let images = index.images.iter().map(|i| (&i.digest, i.media_type.as_str(), &i.platform)).collect();
    sbom::for_index(
        format,
        &sbom::IndexFacts {
            digest: &index.digest,
            media_type: &index.media_type,
            created: created.as_deref(),
            base,
            images,
        },
    )
}
