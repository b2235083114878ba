//! `--tarball FILE`: the images of the run in one archive (see `media::tarball`), written when
//! the run ends through `outfile` (through symlinks, in place for special files, atomically
//! for regular ones, `-` for stdout).

use std::path::Path;

use crate::cache::Cache;
use crate::image::Artifact;
use crate::platform::Platform;
use crate::registry::RegistryClient;

use super::{PublishError, outfile};

/// Images collected for the archive, with the names `docker load` should tag them with.
#[derive(Default)]
pub struct Tarball(crate::media::tarball::Tarball);

impl Tarball {
    pub fn add(&mut self, artifact: Artifact, repo_tags: Vec<String>) {
        self.0.add(artifact, repo_tags);
    }

    /// Adds signatures and attestations as referrers in the archive's OCI layout.
    pub fn add_referrers(&mut self, referrers: Vec<crate::sign::bundle::Attachment>) {
        for a in referrers {
            self.0.add_referrer(a.manifest, a.artifact_type, a.blobs);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the archive to `path` as `--tarball` says.
    pub async fn write(&self, client: &RegistryClient, cache: &Cache, path: &Path) -> Result<(), PublishError> {
        let archive = self.0.archive(client, cache, &Platform::host()).await?;
        outfile::write(path, true, false, |out| {
            archive.write_to(out).map(drop).map_err(|e| PublishError::from(e.at(path)))
        })
    }
}
