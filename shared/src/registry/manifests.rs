//! Manifests and tags: `GET` (checked against its digest when asked for by digest, fetched
//! again when it breaks off), `HEAD`, and `PUT` under a digest or a tag.

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::client::Access;
use super::transfer::{MANIFEST_MAX, TryError, jitter, read_body, retry_delay};
use super::upload::MAX_SESSIONS;
use super::{Reference, RegistryClient, RegistryError, Repository};
use crate::digest::Digest;
use crate::image::manifest::{ACCEPT_MANIFESTS, sniff_media_type};
use crate::output;

pub struct FetchedManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl RegistryClient {
    /// Fetches a manifest or index, verifying its digest when asked for by digest.
    pub async fn manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        let repo = &reference.repository;
        let identifier = reference.identifier();
        let operation = format!("fetching manifest {identifier}");
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/manifests/{identifier}", repo.path);
        let accept = ACCEPT_MANIFESTS.join(", ");
        let (scope, path, accept, operation_ref) = (&scope, &path, &accept, &operation);
        self.with_download_retries(repo, &operation, || async move {
            let operation = operation_ref;
            let (response, attempts) = self
                .execute(repo, scope, operation, &|c, base, _| c.get(format!("{base}{path}")).header(ACCEPT, accept))
                .await?;
            if !response.status().is_success() {
                return Err(self.fail(repo, operation, response, attempts).await.into());
            }
            let header_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let bytes = read_body(response, self.stall, MANIFEST_MAX)
                .await
                .map_err(|f| TryError::from_body(repo, operation, f))?;
            let digest = Digest::of(&bytes);
            if let Some(expected) = &reference.digest
                && expected != &digest
            {
                return Err(TryError::WrongContent { expected: expected.clone(), got: digest });
            }
            let media_type = sniff_media_type(&bytes, header_type.as_deref()).unwrap_or_default();
            Ok(FetchedManifest { bytes, media_type, digest })
        })
        .await
    }

    /// [`RegistryClient::manifest`] of a tag that may not be there yet: `None` when the
    /// registry says it is absent (see [`RegistryError::is_absent`]).
    pub async fn manifest_if_present(&self, reference: &Reference) -> Result<Option<FetchedManifest>, RegistryError> {
        match self.manifest(reference).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_absent() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when the repository already holds the manifest with this digest (a registry
    /// only stores a manifest whose blobs it has, so nothing of it needs pushing); a 403 is
    /// taken as absent.
    pub async fn manifest_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, RegistryError> {
        let path = format!("/v2/{}/manifests/{digest}", repo.path);
        // Some registries (Artifactory) answer 403 for a manifest they do not have; a HEAD has
        // no body to tell a denial by (`is_absent`), and a real one shows again, with its
        // reason, when the manifest is put.
        let absent = [reqwest::StatusCode::NOT_FOUND, reqwest::StatusCode::FORBIDDEN];
        let accept = ACCEPT_MANIFESTS.join(", ");
        self.exists(repo, &path, &format!("checking manifest {digest}"), Some(&accept), &absent).await
    }

    pub async fn put_manifest(
        &self,
        repo: &Repository,
        identifier: &str,
        media_type: &str,
        bytes: &bytes::Bytes,
    ) -> Result<(), RegistryError> {
        self.put_manifest_with_subject(repo, identifier, media_type, bytes).await.map(|_| ())
    }

    /// Pushes a manifest and tells whether the registry answered with an `OCI-Subject` header,
    /// i.e. whether it indexes the manifest's `subject` for the referrers API (OCI 1.1).
    pub async fn put_manifest_with_subject(
        &self,
        repo: &Repository,
        identifier: &str,
        media_type: &str,
        bytes: &bytes::Bytes,
    ) -> Result<bool, RegistryError> {
        let operation = format!("pushing manifest {identifier}");
        let scope = Self::scope(repo, Access::Push, None);
        let path = format!("/v2/{}/manifests/{identifier}", repo.path);
        let mut round = 1;
        loop {
            let (response, attempts) = self
                .execute(repo, &scope, &operation, &|c, base, _| {
                    c.put(format!("{base}{path}")).header(CONTENT_TYPE, media_type).body(bytes.clone())
                })
                .await?;
            if response.status().is_success() {
                return Ok(response.headers().contains_key("oci-subject"));
            }
            let error = self.fail(repo, &operation, response, attempts).await;
            // Registries store a manifest as a blob too, and two processes pushing the same
            // one at once can meet the same race as blob uploads: the same PUT again settles it.
            if error.code() != Some("DIGEST_INVALID") || round >= MAX_SESSIONS {
                return Err(error);
            }
            output::detail(format!("{}: {operation}: {error}; pushing it again", repo.registry));
            tokio::time::sleep(retry_delay(round, None) + jitter()).await;
            round += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::{Reply, anonymous_client, open_registry};

    #[tokio::test]
    async fn a_manifest_is_put_with_its_media_type_and_the_subject_header_is_read() {
        let fake = open_registry().await;
        let manifest = bytes::Bytes::from_static(br#"{"schemaVersion":2}"#);
        let digest = Digest::of(&manifest);
        let path = format!("/v2/app/manifests/{digest}");
        fake.route("PUT", &path, [Reply::status(201).header("oci-subject", "sha256:0")]);
        fake.route("PUT", "/v2/app/manifests/latest", [Reply::status(201)]);
        let media_type = "application/vnd.oci.image.manifest.v1+json";
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let client = anonymous_client();
        let identifier = digest.to_string();
        assert!(client.put_manifest_with_subject(&repo, &identifier, media_type, &manifest).await.unwrap());
        assert!(!client.put_manifest_with_subject(&repo, "latest", media_type, &manifest).await.unwrap());
        let puts = fake.requests_to("PUT", &path);
        assert_eq!(puts.len(), 1);
        assert_eq!(puts[0].header("content-type"), Some(media_type));
        assert_eq!(puts[0].body, manifest);
    }
}
