//! Transport to OCI registries: HTTP, authentication and retries, one file per concern.
//!
//! - `client.rs`: the [`RegistryClient`] type, its options and construction
//! - `endpoint.rs`: endpoint discovery (scheme, the `/v2/` ping, its challenge), login checks
//! - `challenge.rs`: parsing `WWW-Authenticate` challenges and token responses
//! - `token.rs`: scopes, basic credentials, bearer tokens fetched, cached and refreshed
//! - `request.rs`: sending one request (credentials, redirects, retries) and its errors
//! - `transfer.rs`: the stall watchdog, transfer failures and the retry policy
//! - `blobs.rs`: blob `HEAD`, `GET` and cross-repository mounts
//! - `upload.rs`: blob uploads in sessions, retried in new sessions
//! - `manifests.rs`: manifest `GET`, `HEAD` and `PUT` (by digest or tag)
//! - `referrers.rs`: what refers to a manifest (the referrers API, else its fallback tag)
//! - `tls.rs`: trusted roots; `error.rs`: [`RegistryError`]
//! - `testing.rs`: an in-process fake registry for the unit tests of these files
//! - `stream.rs`: an upload whose body streams in as a layer is made, committed by digest
//!
//! Image names (`Reference`, `Repository`) are modelled in `crate::reference`.

mod blobs;
mod challenge;
mod client;
mod endpoint;
mod error;
mod manifests;
mod referrers;
mod request;
mod stream;
#[cfg(test)]
mod testing;
mod tls;
mod token;
mod transfer;
pub(crate) use transfer::jitter;
mod upload;

pub use client::{Access, BlobBody, ClientOptions, RegistryClient};
pub use endpoint::LoginCheck;
pub use error::RegistryError;
pub use manifests::FetchedManifest;
// The image-name grammar lives in `crate::reference`; re-exported here for the callers that
// still name it through the registry.
pub use crate::reference::{Reference, ReferenceError, Repository};
