//! Blobs this run already knows to be in a repository, or is finding out about in the
//! background: base layers checked while Go builds, and layers uploaded while they were
//! compressed. Pushing an image asks here before it sends a request of its own.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::digest::Digest;
use crate::registry::{RegistryClient, Repository};

type Answer = Shared<BoxFuture<'static, bool>>;

/// Checks running at once, so that a run with many images does not flood the registry.
const CHECKS_AT_ONCE: usize = 8;

pub struct KnownBlobs {
    answers: Mutex<HashMap<String, Answer>>,
    /// Blobs this run uploaded: an image holding one cannot be in the registry already.
    uploaded: Mutex<HashSet<String>>,
    checks: Arc<Semaphore>,
}

impl Default for KnownBlobs {
    fn default() -> Self {
        KnownBlobs {
            answers: Default::default(),
            uploaded: Default::default(),
            checks: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
        }
    }
}

fn shared(task: tokio::task::JoinHandle<bool>) -> Answer {
    async move { task.await.unwrap_or(false) }.boxed().shared()
}

fn key(repo: &Repository, digest: &Digest) -> String {
    format!("{}/{}@{digest}", repo.registry, repo.path)
}

impl KnownBlobs {
    /// Starts checking whether `repo` holds the blob, in the background, a few at a time; a
    /// blob already being checked or uploaded is not checked again.
    pub fn check(&self, client: &Arc<RegistryClient>, repo: &Repository, digest: &Digest) {
        let (client, target, digest) = (client.clone(), repo.clone(), digest.clone());
        let answer = {
            let digest = digest.clone();
            async move { client.blob_exists(&target, &digest).await.unwrap_or(false) }
        };
        self.expect(repo, &digest, answer);
    }

    /// Records that the check `answer` tells (true) whether `repo` holds the blob. It runs in
    /// the background from now on, a few at a time; a blob already being checked or uploaded
    /// is not checked again.
    fn expect(&self, repo: &Repository, digest: &Digest, answer: impl Future<Output = bool> + Send + 'static) {
        let mut answers = self.answers.lock().expect("known blobs lock");
        let key = key(repo, digest);
        if answers.contains_key(&key) {
            return;
        }
        let checks = self.checks.clone();
        let task = tokio::spawn(async move {
            let _permit = checks.acquire_owned().await;
            answer.await
        });
        answers.insert(key, shared(task));
    }

    /// Records an upload of the blob this run is making itself: `answer` tells (true) whether
    /// it went through.
    pub fn expect_uploaded(
        &self,
        repo: &Repository,
        digest: &Digest,
        answer: impl Future<Output = bool> + Send + 'static,
    ) {
        self.uploaded.lock().expect("known blobs lock").insert(key(repo, digest));
        let task = tokio::spawn(answer);
        self.answers.lock().expect("known blobs lock").insert(key(repo, digest), shared(task));
    }

    /// True when an earlier check or upload of this run found or put the blob in `repo`.
    pub async fn present(&self, repo: &Repository, digest: &Digest) -> bool {
        let answer = self.answers.lock().expect("known blobs lock").get(&key(repo, digest)).cloned();
        match answer {
            Some(answer) => answer.await,
            None => false,
        }
    }

    /// True when this run uploaded one of these blobs to `repo`.
    pub fn uploaded_any<'a>(&self, repo: &Repository, digests: impl IntoIterator<Item = &'a Digest>) -> bool {
        let uploaded = self.uploaded.lock().expect("known blobs lock");
        digests.into_iter().any(|d| uploaded.contains(&key(repo, d)))
    }
}
