//! The publishers' view of the media: blob copies come from `media::blobs`, and a medium's
//! error is shown as the publish error it always was.

pub use crate::media::blobs::local_path;

use super::PublishError;
use crate::media::MediaError;

impl From<MediaError> for PublishError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::Registry(e) => PublishError::Registry(e),
            MediaError::Io { path, source } => PublishError::Io { path, source },
            MediaError::Layout { path, detail } => PublishError::Layout { path, detail },
            MediaError::MissingBlob { digest, path } => PublishError::MissingBlob { digest, path },
            MediaError::Cache(e) => PublishError::Cache(e),
            MediaError::Docker(e) => PublishError::Docker(e),
            MediaError::NoDaemonPlatform { name, daemon, built } => {
                PublishError::NoDaemonPlatform { name, daemon, built }
            }
            MediaError::NoKindCluster { cluster } => PublishError::NoKindCluster { cluster },
        }
    }
}
