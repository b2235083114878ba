//! Talking to OCI registries: references, authentication challenges and the client.

mod challenge;
mod client;
mod download;
mod error;
mod reference;
mod request;
mod stream;
mod tls;
mod transfer;
mod upload;

pub use client::{Access, BlobBody, ClientOptions, FetchedManifest, RegistryClient};
pub use error::RegistryError;
pub use reference::{DOCKER_HUB, Reference, ReferenceError, Repository, is_plain_http_by_default};
pub use tls::ca_files_with_env;
pub use transfer::{DEFAULT_STALL, STALL_TIMEOUT_ENV};
