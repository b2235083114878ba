//! Talking to OCI registries: references, authentication challenges and the client.

mod challenge;
mod client;
mod error;
mod known;
mod reference;
mod stream;
mod tls;

pub use client::{Access, BlobBody, ClientOptions, FetchedManifest, RegistryClient};
pub use error::RegistryError;
pub use reference::{DOCKER_HUB, Reference, ReferenceError, Repository, is_plain_http_by_default};
pub use stream::StreamUpload;
pub use tls::ca_files_with_env;
