//! The registry as a destination: pushing artifacts by digest (tags are moved later, by the
//! publisher), and the work that starts before the images are finished: checking early which
//! blobs a repository holds, and uploading a layer while it is compressed. What this run
//! learns that way is kept in [`KnownBlobs`], which pushing asks before it sends a request.

mod known;
mod push;
mod stream;

use std::sync::Arc;

pub use push::{Pending, Tagging, Target, apply};

use crate::cache::Cache;
use crate::digest::Digest;
use crate::image::sink::LayerStream;
use crate::registry::{RegistryClient, Repository};
use known::KnownBlobs;
use stream::StreamUpload;

/// Pushes to registries, and remembers what this run found or put there.
pub struct RegistrySink {
    client: Arc<RegistryClient>,
    cache: Cache,
    known: Arc<KnownBlobs>,
    /// How each registry took this run's first SBOM with a subject.
    subjects: crate::publish::sbom::SubjectSupport,
    /// Blobs pushed at once per artifact.
    jobs: usize,
}

impl RegistrySink {
    pub fn new(client: Arc<RegistryClient>, cache: Cache, jobs: usize) -> RegistrySink {
        RegistrySink { client, cache, known: Default::default(), subjects: Default::default(), jobs }
    }

    /// Starts checking, in the background, whether `repo` holds these blobs.
    pub fn expect(&self, repo: &Repository, digests: &[&Digest]) {
        for digest in digests {
            self.known.check(&self.client, repo, digest);
        }
    }

    /// Opens an upload to `repo` fed with a layer's bytes as they are compressed; once the
    /// layer is complete the upload is committed in the background under its digest.
    pub fn stream(&self, repo: Repository) -> Option<LayerStream> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let upload = StreamUpload::start(self.client.clone(), repo, &runtime);
        let copy = upload.writer()?;
        let known = self.known.clone();
        Some(LayerStream {
            copy: Box::new(copy),
            done: Box::new(move |digest| upload.finish_in_background(digest, &known)),
        })
    }
}
