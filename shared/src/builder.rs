//! One import path to one artifact: pick the base, build the kodata layer (once per operating
//! system), then for each
//! platform run `go build`, wrap the binary in its layer and assemble the image; several
//! platforms make an index. Shared by every command that builds. Knows nothing of where
//! images go: the publisher hears of layers while they are made through a [`LayerSink`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::try_join_all;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit, oneshot};

use crate::assemble::image::{self as assemble, AddedLayer, ImageSettings};
use crate::assemble::layer::{LayerCopy, LayerRecord};
use crate::assemble::target::ImageOs;
use crate::assemble::{app, kodata};
use crate::base::{BaseError, BaseImage, BaseResolver, BaseSet, builtin};
use crate::cache::Cache;
use crate::config::KoConfig;
use crate::digest::Digest;
use crate::error::Error;
use crate::gobuild::{BuildFlags, BuildPlan, Built, GoTool, Package, delve, exec_name, group_by_plan};
use crate::image::caps::{self, FileCaps};
use crate::image::sink::LayerSink;
use crate::image::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, Artifact, Image, IndexImage};
use crate::output;
use crate::platform::{Platform, PlatformRequest};
use crate::sbom::{self, BaseRef, SbomFormat};
use crate::sign::provenance;
use crate::time::{ZERO_TIME, rfc3339};
use crate::timing;

/// Image settings from flags that apply to every image of the run.
#[derive(Clone, Debug, Default)]
pub struct ImageFlags {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub user: Option<String>,
}

/// Everything a [`Builder`] is made from, read once by the command.
pub struct BuilderSettings {
    pub config: KoConfig,
    pub go: GoTool,
    pub cache: Cache,
    pub bases: BaseResolver,
    pub platforms: Option<PlatformRequest>,
    pub flags: BuildFlags,
    pub image: ImageFlags,
    /// `-j`: builds, and images holding files, pipes or connections, at once.
    pub jobs: usize,
    /// `--sbom` (`None` for `none`) and `--sbom-dir`.
    pub sbom: Option<SbomFormat>,
    pub sbom_dir: Option<PathBuf>,
    /// `--provenance`: what every image's SLSA provenance says of the run (`None`: no provenance).
    pub provenance: Option<provenance::RunFacts>,
    /// `SOURCE_DATE_EPOCH`: the images' creation time and the app layer's history date.
    pub source_date: Option<i64>,
    /// `KO_DATA_DATE_EPOCH`: the kodata entries' time and history date.
    pub kodata_date: Option<i64>,
    /// `KO_DATA_PATH_ALLOWED_ROOT`: where kodata symlinks may point besides the checkout.
    pub kodata_root: Option<PathBuf>,
}

pub struct Builder {
    settings: BuilderSettings,
    jobs: Semaphore,
    delve: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<LayerRecord>>>>,
    sink: Arc<dyn LayerSink>,
}

/// What every platform image of one package shares.
struct PackageParts<'a> {
    package: &'a Package,
    /// The binary's name in the image.
    name: String,
    created_by: String,
    settings: ImageSettings,
    /// The `security.capability` value for the binary, if the build asks for capabilities.
    file_caps: Option<Vec<u8>>,
    /// The kodata layer for each operating system the package's images are for.
    kodata: Vec<(ImageOs, LayerRecord)>,
}

impl PackageParts<'_> {
    fn kodata(&self, os: ImageOs) -> &LayerRecord {
        &self.kodata.iter().find(|(o, _)| *o == os).expect("a kodata layer for each image's OS").1
    }
}

/// What the sink is told once a streamed layer is complete.
type LayerDone = Box<dyn FnOnce(&Digest) + Send>;

impl Builder {
    /// A builder that tells `sink` (the publisher) of layers while they are made.
    pub fn new(settings: BuilderSettings, sink: Arc<dyn LayerSink>) -> Builder {
        let jobs = Semaphore::new(settings.jobs.max(1));
        Builder { settings, jobs, delve: Default::default(), sink }
    }

    pub fn sbom_dir(&self) -> Option<&std::path::Path> {
        self.settings.sbom_dir.as_deref()
    }

    pub fn debug(&self) -> bool {
        self.settings.flags.debug
    }

    pub fn base_reference(&self, import_path: &str) -> String {
        self.settings.config.base_for(import_path).unwrap_or(builtin::BUILTIN_BASE).to_string()
    }

    /// One of the `-j` slots.
    async fn slot(&self) -> SemaphorePermit<'_> {
        self.jobs.acquire().await.expect("semaphore open")
    }

    /// Builds the artifact for one package.
    pub async fn build(&self, package: &Package) -> Result<Artifact, Error> {
        let mut artifacts = self.build_all(std::slice::from_ref(package)).await.map_err(|(_, e)| e)?;
        Ok(artifacts.remove(0))
    }

    /// Builds the artifacts for several packages, in their order. Packages built with the
    /// same settings share one `go build`, which checks their common dependencies once; each
    /// image is made as soon as Go has linked its binary, while Go links the others. An error
    /// comes with the index of the package it belongs to.
    pub async fn build_all(&self, packages: &[Package]) -> Result<Vec<Artifact>, (usize, Error)> {
        self.build_all_then(packages, |_, artifact| std::future::ready(Ok(artifact))).await
    }

    /// As [`Builder::build_all`], and `then` is given each artifact (with its package's index)
    /// as soon as it is built, while the others build; its results come back in order.
    pub async fn build_all_then<T, F, Fut>(&self, packages: &[Package], then: F) -> Result<Vec<T>, (usize, Error)>
    where
        F: Fn(usize, Artifact) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let s = &self.settings;
        let bases = try_join_all(packages.iter().enumerate().map(|(i, p)| async move {
            let base_ref = self.base_reference(&p.import_path);
            let _span = timing::span(|| format!("base lookup {base_ref}"));
            s.bases.images(&base_ref, s.platforms.as_ref()).await.map_err(|e| (i, e.into()))
        }))
        .await?;
        self.expect_base_layers(packages, &bases);
        let plans = try_join_all(packages.iter().zip(&bases).enumerate().map(|(i, (p, set))| async move {
            try_join_all(set.images.iter().map(|base| s.go.plan(p, &base.platform, &s.config, &s.flags)))
                .await
                .map_err(|e| (i, e.into()))
        }))
        .await?;
        let name_of = |i: usize, k: usize| exec_name(&packages[i].import_path, &bases[i].images[k].platform);
        let groups: Vec<_> = group_by_plan(&plans, name_of).into_iter().filter(|(_, m)| m.len() > 1).collect();
        let (senders, receivers): (HashMap<_, _>, HashMap<_, _>) = groups
            .iter()
            .flat_map(|(_, members)| members.iter())
            .map(|&member| {
                let (tx, rx) = oneshot::channel();
                ((member, tx), (member, rx))
            })
            .unzip();
        let (senders, receivers) = (Mutex::new(senders), Mutex::new(receivers));
        let shared = self.prebuild(packages, &bases, groups, &senders);
        let images = try_join_all(packages.iter().enumerate().map(|(i, p)| {
            let (bases, plans, receivers) = (&bases[i], &plans[i], &receivers);
            let prebuilt = move |k| receivers.lock().expect("receivers lock").remove(&(i, k));
            let then = &then;
            async move {
                let artifact = self.build_one(p, bases, plans, prebuilt).await.map_err(|e| (i, e))?;
                then(i, artifact).await.map_err(|e| (i, e))
            }
        }));
        let ((), artifacts) = tokio::try_join!(shared, images)?;
        Ok(artifacts)
    }

    /// Tells the sink, while Go builds, which base layers each image will hold.
    fn expect_base_layers(&self, packages: &[Package], bases: &[BaseSet]) {
        for (package, set) in packages.iter().zip(bases) {
            let digests: Vec<&Digest> = set
                .images
                .iter()
                .flat_map(|b| &b.layers)
                .filter(|l| l.descriptor.is_distributable())
                .map(|l| &l.descriptor.digest)
                .collect();
            self.sink.expect(&package.import_path, &digests);
        }
    }

    /// One `go build` for each group of (package, platform) that share a build plan; each
    /// binary goes to its member's sender as soon as it is linked. A member whose sender is
    /// dropped unused (the shared build failed) is built alone, which reports its error.
    async fn prebuild(
        &self,
        packages: &[Package],
        bases: &[BaseSet],
        groups: Vec<(&BuildPlan, Vec<(usize, usize)>)>,
        senders: &Mutex<HashMap<(usize, usize), oneshot::Sender<Built>>>,
    ) -> Result<(), (usize, Error)> {
        try_join_all(groups.into_iter().map(|(plan, members)| async move {
            let _permit = self.slot().await;
            let items: Vec<(&Package, &Platform)> =
                members.iter().map(|&(i, k)| (&packages[i], &bases[i].images[k].platform)).collect();
            for (package, platform) in &items {
                output::step(format!("Building {} for {platform}", package.import_path));
            }
            let send = |j: usize, built: Built| {
                if let Some(tx) = senders.lock().expect("senders lock").remove(&members[j]) {
                    // The receiver is gone only when its image failed, which ends the run.
                    let _ = tx.send(built);
                }
            };
            let _span = timing::span(|| format!("go build of {} packages", items.len()));
            let built = self
                .settings
                .go
                .build_many(&items, plan, &self.settings.cache, &send)
                .await
                .map_err(|e| (members[0].0, e.into()))?;
            if let Some(built) = built {
                output::detail(format!("ran {} in {}", plan.args.join(" "), plan.dir.display()));
                built.into_iter().enumerate().for_each(|(j, b)| send(j, b));
            }
            let mut senders = senders.lock().expect("senders lock");
            members.iter().for_each(|member| drop(senders.remove(member)));
            Ok::<_, (usize, Error)>(())
        }))
        .await?;
        Ok(())
    }

    /// Builds one package's artifact on its bases with its plans (one per base), taking the
    /// binaries `prebuilt` has (by platform index) and running `go build` for the rest.
    async fn build_one(
        &self,
        package: &Package,
        bases: &BaseSet,
        plans: &[BuildPlan],
        prebuilt: impl Fn(usize) -> Option<oneshot::Receiver<Built>>,
    ) -> Result<Artifact, Error> {
        let first = bases.images.first().ok_or_else(|| BaseError::Invalid {
            reference: self.base_reference(&package.import_path),
            detail: "no image matched".into(),
        })?;
        output::step(format!("Using base {} for {}", bases.shown, package.import_path));
        if let Some(b) = &package.config {
            output::detail(format!("Using build config {} for {}", b.id, package.import_path));
        }
        let mut systems: Vec<ImageOs> = Vec::new();
        for os in bases.images.iter().map(|b| ImageOs::of(&b.platform)) {
            if !systems.contains(&os) {
                systems.push(os);
            }
        }
        let parts = self.package_parts(package, &systems).await?;
        let images = try_join_all(
            bases
                .images
                .iter()
                .zip(plans)
                .enumerate()
                .map(|(k, (base, plan))| self.platform_image(&parts, base, plan, prebuilt(k))),
        )
        .await?;
        if images.len() == 1 {
            return Ok(Artifact::Image(images.into_iter().next().expect("one image")));
        }
        let index = self.index(&parts, bases, first, images)?;
        Ok(Artifact::Index(index))
    }

    /// The kodata layers (one for each of the distinct `systems`) and the image settings every
    /// platform image of `package` shares.
    async fn package_parts<'a>(&self, package: &'a Package, systems: &[ImageOs]) -> Result<PackageParts<'a>, Error> {
        let s = &self.settings;
        let kodata_mtime = s.kodata_date.unwrap_or(0);
        let mut layers = Vec::new();
        for os in systems.iter().copied() {
            let (cache, dir, root) = (s.cache.clone(), package.dir.clone(), s.kodata_root.clone());
            let permit = self.slot().await;
            let layer = tokio::task::spawn_blocking(move || {
                kodata::build_layer(&cache, &dir, kodata_mtime, root.as_deref(), os)
            })
            .await
            .expect("kodata task")?;
            drop(permit);
            layers.push((os, layer));
        }
        let digests: Vec<&Digest> = layers.iter().map(|(_, l)| &l.digest).collect();
        self.sink.expect(&package.import_path, &digests);
        let name = app::binary_name(&package.import_path);
        let file_caps = match package.config.as_ref().and_then(|b| b.linux_capabilities.as_ref()) {
            Some(terms) => FileCaps::parse(terms)?.xattr(),
            None => None,
        };
        Ok(PackageParts {
            package,
            created_by: format!("kubectl-ko build ko://{}", package.import_path),
            settings: self.settings_for(package),
            name,
            file_caps,
            kodata: layers,
        })
    }

    /// One platform's image: its binary, layers and SBOM on `base`.
    async fn platform_image(
        &self,
        parts: &PackageParts<'_>,
        base: &BaseImage,
        plan: &BuildPlan,
        prebuilt: Option<oneshot::Receiver<Built>>,
    ) -> Result<Image, Error> {
        // The binary of a shared build, once linked; waited for without a slot, which the
        // shared build may need.
        // A binary the shared build announced but did not send (it failed) is built alone.
        let (announced, prebuilt) = match prebuilt {
            Some(rx) => (true, rx.await.ok()),
            None => (false, None),
        };
        // One of the `-j` slots for the build and everything that holds files, pipes or
        // connections for this image (Go's build info, the layer and its upload), so that what
        // is open at once is bounded by `-j`, not by the number of images.
        let permit = self.slot().await;
        let binary = match prebuilt {
            Some(built) => built,
            None => self.go_build(parts.package, &base.platform, plan, announced).await?,
        };
        let (app_layer, build_info) = self.app_layer(parts, &base.platform, binary).await?;
        drop(permit);
        let (layers, settings) = self.layers(parts, &base.platform, app_layer).await?;
        let mut image = assemble::assemble(&self.settings.cache, base, &layers, &settings)?;
        if let (Some(format), Some(info)) = (self.settings.sbom, &build_info) {
            let base_ref = BaseRef { name: base.name.clone(), digest: base.digest.clone() };
            let doc = sbom::of_images::for_image(format, &image, base_ref, info);
            self.write_sbom(&parts.name, Some(&image), &doc)?;
            image.sbom = Some(sbom::of_images::attached(doc));
        }
        if let Some(run) = &self.settings.provenance {
            image.provenance = Some(self.provenance(run, parts.package, base, plan, build_info.as_ref()).await);
        }
        Ok(image)
    }

    /// One platform image's SLSA provenance predicate.
    async fn provenance(
        &self,
        run: &provenance::RunFacts,
        package: &Package,
        base: &BaseImage,
        plan: &BuildPlan,
        build_info: Option<&sbom::buildinfo::BuildInfo>,
    ) -> serde_json::Value {
        let (config, build) = (&self.settings.config, package.config.as_ref());
        let config_env = build.and_then(|b| b.env.clone()).unwrap_or(config.default_env.clone());
        let ldflags = self.settings.flags.ldflags.clone().or(build.and_then(|b| b.ldflags.clone()));
        let facts = provenance::ImageFacts {
            import_path: &package.import_path,
            platforms: vec![base.platform.to_string()],
            flags: build.and_then(|b| b.flags.clone()).unwrap_or(config.default_flags.clone()),
            ldflags: ldflags.unwrap_or(config.default_ldflags.clone()),
            go_args: &plan.args,
            config_env: &config_env,
            base: Some((&base.name, &base.digest)),
            build_info,
            git_commit: self.settings.go.source_commit(&package.dir).await,
        };
        provenance::predicate_now(run, &facts)
    }

    /// `go build` of one package for one platform, alone; announced unless a shared build
    /// already said it was building it.
    async fn go_build(
        &self,
        package: &Package,
        platform: &Platform,
        plan: &BuildPlan,
        announced: bool,
    ) -> Result<Built, Error> {
        let what = format!("{} for {platform}", package.import_path);
        if announced {
            output::detail(format!("building {what} alone, since the shared build failed"));
        } else {
            output::step(format!("Building {what}"));
        }
        let _span = timing::span(|| format!("go build {} for {platform}", package.import_path));
        let (binary, cmdline) = self.settings.go.build(package, platform, plan, &self.settings.cache).await?;
        output::detail(format!("ran {} in {}", cmdline.join(" "), plan.dir.display()));
        Ok(binary)
    }

    /// The binary's layer, streamed to the sink while it is compressed, and (for the SBOM)
    /// Go's build info, read meanwhile.
    async fn app_layer(
        &self,
        parts: &PackageParts<'_>,
        platform: &Platform,
        binary: Built,
    ) -> Result<(LayerRecord, Option<sbom::buildinfo::BuildInfo>), Error> {
        let s = &self.settings;
        // Held until Go's build info is read too (the layer's task drops its own).
        let held = binary.clone();
        let build_info = async {
            if s.sbom.is_some() || s.provenance.is_some() {
                sbom::buildinfo::read(s.go.program(), held.path()).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let xattrs = file_xattrs(parts, platform);
        let span = timing::span(|| format!("binary layer {} for {platform}", parts.package.import_path));
        let done: Arc<Mutex<Option<LayerDone>>> = Default::default();
        let start_copy = self.start_copy(&parts.package.import_path, done.clone());
        let (cache, name, os) = (s.cache.clone(), parts.name.clone(), ImageOs::of(platform));
        let layer = tokio::task::spawn_blocking(move || {
            let entry = app::AppEntry { name: &name, os, xattrs: &xattrs };
            app::built_binary_layer(&cache, &binary, entry, &start_copy)
        });
        let (record, build_info) = tokio::join!(layer, build_info);
        let (record, build_info) = (record.expect("layer task")?, build_info?);
        drop(span);
        let done = done.lock().expect("stream lock").take();
        if let Some(done) = done {
            done(&record.digest);
        }
        Ok((record, build_info))
    }

    /// Asks the sink, when the layer is made, for where its compressed bytes also go; keeps
    /// what to tell it once the layer is complete in `done`.
    fn start_copy(
        &self,
        import_path: &str,
        done: Arc<Mutex<Option<LayerDone>>>,
    ) -> impl Fn() -> Option<LayerCopy> + Send + 'static {
        let (sink, import_path) = (self.sink.clone(), import_path.to_string());
        move || {
            let stream = sink.stream(&import_path)?;
            *done.lock().expect("stream lock") = Some(stream.done);
            Some(stream.copy)
        }
    }

    /// The layers added on the base (kodata, the binary, with `--debug` Delve) and the image
    /// settings (Delve changes the entrypoint).
    async fn layers(
        &self,
        parts: &PackageParts<'_>,
        platform: &Platform,
        app_layer: LayerRecord,
    ) -> Result<(Vec<AddedLayer>, ImageSettings), Error> {
        let s = &self.settings;
        let os = ImageOs::of(platform);
        let mut settings = parts.settings.clone();
        settings.entrypoint = vec![os.runtime_path(&app::entrypoint(&parts.name))];
        let app_date = || s.source_date.map(rfc3339).unwrap_or_else(|| ZERO_TIME.into());
        let mut layers = vec![
            AddedLayer {
                record: parts.kodata(os).clone(),
                created_by: parts.created_by.clone(),
                comment: format!("kodata contents, at $KO_DATA_PATH ({})", os.runtime_path(kodata::KO_DATA_PATH)),
                created: s.kodata_date.map(rfc3339).unwrap_or_else(|| ZERO_TIME.into()),
            },
            AddedLayer {
                record: app_layer,
                created_by: parts.created_by.clone(),
                comment: format!("go build output, at {}", app::entrypoint(&parts.name)),
                created: app_date(),
            },
        ];
        if !s.flags.debug {
            return Ok((layers, settings));
        }
        match self.delve_layer(platform, file_xattrs(parts, platform)).await? {
            Some(record) => {
                layers.push(AddedLayer {
                    record,
                    created_by: parts.created_by.clone(),
                    comment: format!("Delve debugger, at {}", delve::PATH_IN_IMAGE),
                    created: app_date(),
                });
                settings.entrypoint = delve::entrypoint(&app::entrypoint(&parts.name));
            }
            None => output::warn(format!(
                "image for platform {platform} will be built without debugging enabled because Delve does not support that platform"
            )),
        }
        Ok((layers, settings))
    }

    /// The index over a package's platform images, annotated with its base, with its SBOM.
    fn index(
        &self,
        parts: &PackageParts<'_>,
        bases: &BaseSet,
        first: &BaseImage,
        images: Vec<Image>,
    ) -> Result<IndexImage, Error> {
        let mut annotations = parts.settings.annotations.clone();
        match &bases.index {
            Some((name, digest, _)) => {
                annotations.insert(ANNOTATION_BASE_NAME.into(), crate::image::base_name(name));
                annotations.insert(ANNOTATION_BASE_DIGEST.into(), digest.to_string());
            }
            None => {
                annotations.insert(ANNOTATION_BASE_NAME.into(), crate::image::base_name(&first.name));
            }
        }
        let descriptors: Vec<_> = bases.images.iter().map(|b| b.descriptor.clone()).collect();
        // The base index's media type; its entries may be of the other family.
        let family = bases.index.as_ref().map_or(first.family, |(_, _, family)| *family);
        let mut index = IndexImage::new(family, images, annotations, &descriptors);
        if let Some(format) = self.settings.sbom {
            let base =
                bases.index.as_ref().map(|(name, digest, _)| BaseRef { name: name.clone(), digest: digest.clone() });
            let doc = sbom::of_images::for_index(format, &index, base);
            self.write_sbom(&parts.name, None, &doc)?;
            index.sbom = Some(sbom::of_images::attached(doc));
        }
        let base = bases.index.as_ref().map(|(name, digest, _)| (name.as_str(), digest));
        let predicates: Vec<&serde_json::Value> = index.images.iter().filter_map(|i| i.provenance.as_ref()).collect();
        let platforms = index.images.iter().map(|i| i.platform.to_string()).collect();
        index.provenance = provenance::for_index(&predicates, platforms, base);
        Ok(index)
    }

    /// Image settings for one package: `.ko.yaml`'s `image:` (top level, then the package's
    /// build entry), then the flags. The entrypoint depends on the platform: [`Self::layers`]
    /// sets it.
    fn settings_for(&self, package: &Package) -> ImageSettings {
        let s = &self.settings;
        let mut image = s.config.image.clone();
        if let Some(build) = &package.config {
            image = image.overlaid(&build.image);
        }
        image.labels.extend(s.image.labels.clone());
        image.annotations.extend(s.image.annotations.clone());
        ImageSettings {
            entrypoint: Vec::new(),
            env: image.env,
            working_dir: image.working_dir,
            labels: image.labels,
            annotations: image.annotations,
            user: s.image.user.clone().or(image.user),
            created: s.source_date.map(rfc3339),
        }
    }

    /// `--sbom-dir`: `<app>-<platform>.<ext>` for an image, `<app>-index.<ext>` for an index.
    fn write_sbom(&self, app: &str, image: Option<&Image>, sbom: &sbom::Sbom) -> Result<(), Error> {
        let Some(dir) = &self.settings.sbom_dir else { return Ok(()) };
        let file = sbom::file_name(app, image.map(|i| &i.platform), sbom.format);
        output::step(format!("Writing SBOM to {}", dir.join(&file).display()));
        sbom::write_to_dir(dir, &file, sbom)?;
        Ok(())
    }

    /// The `/ko-app/dlv` layer for a platform Delve supports (built once per platform and
    /// file capabilities per run). Delve gets the app's capabilities, as in ko.
    async fn delve_layer(
        &self,
        platform: &Platform,
        xattrs: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<LayerRecord>, Error> {
        if !delve::supports(platform) {
            return Ok(None);
        }
        let key = format!("{platform} {xattrs:?}");
        let cell = self.delve.lock().await.entry(key).or_default().clone();
        let record = cell
            .get_or_try_init(|| async {
                let _permit = self.slot().await;
                let cache = self.settings.cache.clone();
                let binary = self.settings.go.delve(&cache, platform).await?;
                let os = ImageOs::of(platform);
                let record = tokio::task::spawn_blocking(move || {
                    app::entry_layer(&cache, &binary, app::AppEntry { name: "dlv", os, xattrs: &xattrs })
                })
                .await
                .expect("layer task")?;
                Ok::<_, Error>(record)
            })
            .await?;
        Ok(Some(record.clone()))
    }
}

/// The extended attributes of the binaries in the image: the file capabilities the build asks
/// for, on Linux (a Linux notion; other platforms get plain binaries).
fn file_xattrs(parts: &PackageParts<'_>, platform: &Platform) -> Vec<(String, Vec<u8>)> {
    match &parts.file_caps {
        Some(value) if platform.os == "linux" => vec![(caps::XATTR.to_string(), value.clone())],
        _ => vec![],
    }
}
