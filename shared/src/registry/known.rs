//! Blobs this run already knows to be in a repository, or is finding out about in the
//! background: base layers checked while Go builds, and layers uploaded while they were
//! compressed. Pushing an image asks here before it sends a request of its own.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::{RegistryClient, Repository};
use crate::digest::Digest;

type Answer = Shared<BoxFuture<'static, bool>>;

#[derive(Default)]
pub(crate) struct KnownBlobs {
    answers: Mutex<HashMap<String, Answer>>,
    /// Blobs this run uploaded: an image holding one cannot be in the registry already.
    uploaded: Mutex<HashSet<String>>,
}

fn key(repo: &Repository, digest: &Digest) -> String {
    format!("{}/{}@{digest}", repo.registry, repo.path)
}

impl RegistryClient {
    /// Records that `answer` tells (true) whether `repo` holds the blob. It runs in the
    /// background from now on; a later answer for the same blob replaces an earlier one.
    pub fn expect_blob(&self, repo: &Repository, digest: &Digest, answer: impl Future<Output = bool> + Send + 'static) {
        let task = tokio::spawn(answer);
        let answer: Answer = async move { task.await.unwrap_or(false) }.boxed().shared();
        self.known.answers.lock().expect("known blobs lock").insert(key(repo, digest), answer);
    }

    /// [`RegistryClient::expect_blob`] for a blob this run is uploading itself.
    pub fn expect_uploaded_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        answer: impl Future<Output = bool> + Send + 'static,
    ) {
        self.known.uploaded.lock().expect("known blobs lock").insert(key(repo, digest));
        self.expect_blob(repo, digest, answer);
    }

    /// True when an earlier check or upload of this run found or put the blob in `repo`.
    pub async fn known_present(&self, repo: &Repository, digest: &Digest) -> bool {
        let answer = self.known.answers.lock().expect("known blobs lock").get(&key(repo, digest)).cloned();
        match answer {
            Some(answer) => answer.await,
            None => false,
        }
    }

    /// True when this run uploaded one of these blobs to `repo`.
    pub fn uploaded_any<'a>(&self, repo: &Repository, digests: impl IntoIterator<Item = &'a Digest>) -> bool {
        let uploaded = self.known.uploaded.lock().expect("known blobs lock");
        digests.into_iter().any(|d| uploaded.contains(&key(repo, d)))
    }
}
