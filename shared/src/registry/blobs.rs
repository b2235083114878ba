//! Blobs: `HEAD` (is it there?), `GET` into a file (its digest checked as it streams, fetched
//! again from its start when it breaks off), and cross-repository mounts. Uploads are in
//! `upload.rs`.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use tokio::io::AsyncWriteExt;

use super::client::Access;
use super::transfer::{TryError, next_chunk};
use super::{RegistryClient, RegistryError, Repository};
use crate::digest::Digest;

impl RegistryClient {
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, RegistryError> {
        let path = format!("/v2/{}/blobs/{digest}", repo.path);
        self.exists(repo, &path, &format!("checking blob {digest}"), None, &[StatusCode::NOT_FOUND]).await
    }

    /// `HEAD` of a path in the repository: true when found, false when answered one of the
    /// `absent` statuses.
    pub(super) async fn exists(
        &self,
        repo: &Repository,
        path: &str,
        operation: &str,
        accept: Option<&str>,
        absent: &[StatusCode],
    ) -> Result<bool, RegistryError> {
        let scope = Self::scope(repo, Access::Push, None);
        let (response, attempts) = self
            .execute(repo, &scope, operation, &|c, base, _| {
                let request = c.head(format!("{base}{path}"));
                match accept {
                    Some(accept) => request.header(ACCEPT, accept),
                    None => request,
                }
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            s if absent.contains(&s) => Ok(false),
            _ => Err(self.fail(repo, operation, response, attempts).await),
        }
    }

    /// Asks the registry to link a blob from another repository; `false` when it declined.
    pub async fn mount_blob(
        &self,
        repo: &Repository,
        from: &Repository,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let operation = format!("mounting blob {digest} from {}", from.path);
        let scope = Self::scope(repo, Access::Push, Some(from));
        let path = format!("/v2/{}/blobs/uploads/?mount={digest}&from={}", repo.path, from.path);
        let (response, attempts) =
            self.execute(repo, &scope, &operation, &|c, base, _| c.post(format!("{base}{path}"))).await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false), // an upload session we leave to expire
            _ => Err(self.fail(repo, &operation, response, attempts).await),
        }
    }

    /// Downloads a blob into `dest`, checking its digest as it streams.
    pub async fn fetch_blob(&self, repo: &Repository, digest: &Digest, dest: &Path) -> Result<(), RegistryError> {
        let operation = format!("downloading blob {digest}");
        self.with_download_retries(repo, &operation, || self.fetch_blob_once(repo, digest, dest, &operation)).await
    }

    async fn fetch_blob_once(
        &self,
        repo: &Repository,
        digest: &Digest,
        dest: &Path,
        operation: &str,
    ) -> Result<(), TryError> {
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/blobs/{digest}", repo.path);
        let (response, attempts) =
            self.execute(repo, &scope, operation, &|c, base, _| c.get(format!("{base}{path}"))).await?;
        if !response.status().is_success() {
            return Err(self.fail(repo, operation, response, attempts).await.into());
        }
        let file_error = |source| {
            TryError::Final(RegistryError::File {
                registry: repo.registry.clone(),
                operation: operation.to_string(),
                path: dest.to_path_buf(),
                source,
            })
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut stream = response.bytes_stream();
        loop {
            match next_chunk(&mut stream, self.stall).await {
                Ok(Some(chunk)) => {
                    sha2::Digest::update(&mut hasher, &chunk);
                    file.write_all(&chunk).await.map_err(file_error)?;
                }
                Ok(None) => break,
                Err(failure) => return Err(TryError::Again { detail: failure.describe(), failure: Some(failure) }),
            }
        }
        file.flush().await.map_err(file_error)?;
        let got = Digest::from_hasher(hasher);
        if &got != digest {
            return Err(TryError::WrongContent { expected: digest.clone(), got });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::BlobBody;
    use crate::registry::testing::{Reply, anonymous_client, open_registry};

    #[tokio::test]
    async fn a_declined_mount_falls_back_to_an_upload() {
        let fake = open_registry().await;
        let client = anonymous_client();
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let base = Repository::parse(&format!("{}/base", fake.host())).unwrap();
        let blob = bytes::Bytes::from_static(b"layer bytes");
        let digest = Digest::of(&blob);

        fake.route("POST", "/v2/app/blobs/uploads/", [Reply::status(201)]);
        assert!(client.mount_blob(&repo, &base, &digest).await.unwrap(), "201: mounted");

        let session = Reply::status(202).header("location", "/v2/app/blobs/uploads/s1");
        fake.route("POST", "/v2/app/blobs/uploads/", [session.clone(), session]);
        fake.route("PUT", "/v2/app/blobs/uploads/s1", [Reply::status(201)]);
        assert!(!client.mount_blob(&repo, &base, &digest).await.unwrap(), "202: declined");
        client.upload_blob(&repo, &digest, blob.len() as u64, BlobBody::Bytes(blob.clone())).await.unwrap();

        let posts = fake.requests_to("POST", "/v2/app/blobs/uploads/");
        let queries: Vec<_> = posts.iter().map(|r| r.query.clone()).collect();
        let mount = Some(format!("mount={digest}&from=base"));
        assert_eq!(queries, [mount.clone(), mount, None]);
        let puts = fake.requests_to("PUT", "/v2/app/blobs/uploads/s1");
        assert_eq!(puts.len(), 1);
        assert_eq!(puts[0].query.as_deref(), Some(format!("digest={digest}").as_str()));
        assert_eq!(puts[0].body, blob);
    }

    /// A 503 to an upload's PATCH may come after the registry took part of the body: the
    /// upload starts over in a new session instead of sending the body into the same one.
    #[tokio::test]
    async fn an_upload_answered_5xx_goes_again_in_a_new_session() {
        let fake = open_registry().await;
        let client = anonymous_client();
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let blob = bytes::Bytes::from(vec![7u8; 2 * 1024 * 1024]);
        let digest = Digest::of(&blob);
        let session = |id: &str| Reply::status(202).header("location", &format!("/v2/app/blobs/uploads/{id}"));
        fake.route("POST", "/v2/app/blobs/uploads/", [session("s1"), session("s2")]);
        fake.route("PATCH", "/v2/app/blobs/uploads/s1", [Reply::status(503)]);
        fake.route("PATCH", "/v2/app/blobs/uploads/s2", [Reply::status(202)]);
        fake.route("PUT", "/v2/app/blobs/uploads/s2", [Reply::status(201)]);
        fake.route("HEAD", &format!("/v2/app/blobs/{digest}"), [Reply::status(404)]);
        client.upload_blob(&repo, &digest, blob.len() as u64, BlobBody::Bytes(blob.clone())).await.unwrap();
        assert_eq!(fake.requests_to("PATCH", "/v2/app/blobs/uploads/s1").len(), 1);
        assert_eq!(fake.requests_to("PATCH", "/v2/app/blobs/uploads/s2")[0].body, blob);
        assert_eq!(fake.requests_to("PUT", "/v2/app/blobs/uploads/s2").len(), 1);
    }

    #[tokio::test]
    async fn a_download_that_breaks_off_or_does_not_match_is_fetched_again() {
        let fake = open_registry().await;
        let blob = bytes::Bytes::from_static(b"the whole blob");
        let digest = Digest::of(&blob);
        let path = format!("/v2/app/blobs/{digest}");
        let truncated = Reply::status(200).body(blob.clone()).truncated_at(5);
        let wrong = Reply::status(200).body("not the blob!!");
        fake.route("GET", &path, [truncated, wrong, Reply::status(200).body(blob.clone())]);
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("blob");
        anonymous_client().fetch_blob(&repo, &digest, &dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), blob);
        assert_eq!(fake.requests_to("GET", &path).len(), 3);

        let wrong = Reply::status(200).body("not the blob!!");
        fake.route("GET", &path, [wrong]);
        match anonymous_client().fetch_blob(&repo, &digest, &dest).await {
            Err(RegistryError::WrongContent { attempts: 4, expected, got, .. }) => {
                assert_eq!((expected, got), (digest, Digest::of(b"not the blob!!")));
            }
            other => panic!("expected a digest mismatch after 4 attempts, got {:?}", other.err()),
        }
    }
}
