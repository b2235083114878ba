//! The referrers of a manifest (OCI 1.1): the registry's referrers API
//! (`GET /v2/<name>/referrers/<digest>`), else the fallback index under the tag
//! `sha256-<hex>` that clients keep for registries without it.

use reqwest::StatusCode;
use reqwest::header::ACCEPT;

use super::client::Access;
use super::transfer::{MANIFEST_MAX, TryError, read_body};
use super::{Reference, RegistryClient, RegistryError, Repository};
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Index, OCI_INDEX};

impl RegistryClient {
    /// What refers to `subject` in `repo`; empty when nothing does. A registry without the
    /// API answers 404 (the spec's sign for "not supported"), and the fallback tag is read.
    pub async fn referrers(&self, repo: &Repository, subject: &Digest) -> Result<Vec<Descriptor>, RegistryError> {
        let operation = format!("listing the referrers of {subject}");
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/referrers/{subject}", repo.path);
        let (scope, path, operation_ref) = (&scope, &path, &operation);
        let listed = self
            .with_download_retries(repo, &operation, || async move {
                let operation = operation_ref;
                let (response, attempts) = self
                    .execute(repo, scope, operation, &|c, base, _| {
                        c.get(format!("{base}{path}")).header(ACCEPT, OCI_INDEX)
                    })
                    .await?;
                match response.status() {
                    StatusCode::OK => {}
                    StatusCode::NOT_FOUND => return Ok(None),
                    _ => return Err(self.fail(repo, operation, response, attempts).await.into()),
                }
                let bytes = read_body(response, self.stall, MANIFEST_MAX)
                    .await
                    .map_err(|f| TryError::from_body(repo, operation, f))?;
                Ok(Some(bytes))
            })
            .await?;
        let bytes = match listed {
            Some(bytes) => bytes,
            None => {
                let reference = Reference { repository: repo.clone(), tag: Some(subject.as_tag()), digest: None };
                match self.manifest_if_present(&reference).await? {
                    Some(found) => found.bytes,
                    None => return Ok(Vec::new()),
                }
            }
        };
        // Whatever is not an index lists nothing (a tag of that name someone else uses).
        Ok(serde_json::from_slice::<Index>(&bytes).map(|index| index.manifests).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::{Reply, anonymous_client, open_registry};

    #[tokio::test]
    async fn the_api_is_asked_first_and_the_fallback_tag_read_without_it() {
        let fake = open_registry().await;
        let (with, without) = (Digest::of(b"with"), Digest::of(b"without"));
        let index = |n: usize| {
            let manifests: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1}}"#,
                        Digest::of(&[i as u8])
                    )
                })
                .collect();
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#, manifests.join(","))
        };
        fake.route("GET", &format!("/v2/app/referrers/{with}"), [Reply::status(200).body(index(2))]);
        fake.route("GET", &format!("/v2/app/referrers/{without}"), [Reply::status(404)]);
        fake.route(
            "GET",
            &format!("/v2/app/manifests/sha256-{}", without.hex()),
            [Reply::status(200).header("content-type", OCI_INDEX).body(index(3))],
        );
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let client = anonymous_client();
        assert_eq!(client.referrers(&repo, &with).await.unwrap().len(), 2);
        assert_eq!(client.referrers(&repo, &without).await.unwrap().len(), 3);
        assert!(client.referrers(&repo, &Digest::of(b"none")).await.unwrap().is_empty());
    }
}
