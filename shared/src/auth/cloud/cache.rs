//! Registry credentials a cloud issued, kept for their lifetime within a run: concurrent
//! lookups for one key wait for one fetch instead of each asking the cloud.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::super::{AuthError, FoundCredential};

/// How long before its expiry a credential is no longer handed out.
const MARGIN: Duration = Duration::from_secs(60);

type Slot = Arc<Mutex<Option<(FoundCredential, Option<SystemTime>)>>>;

#[derive(Debug, Default)]
pub struct TokenCache {
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

impl TokenCache {
    /// The credential cached under `key`, or the one `fetch` returns with its expiry (`None`:
    /// no known expiry, kept for the run). An expiry already past is used once, not kept.
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<FoundCredential, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(FoundCredential, Option<SystemTime>), AuthError>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(key.to_string()).or_default().clone()
        };
        let mut held = slot.lock().await;
        if let Some((found, expiry)) = held.as_ref()
            && expiry.is_none_or(|at| SystemTime::now() + MARGIN < at)
        {
            return Ok(found.clone());
        }
        let (found, expiry) = fetch().await?;
        *held =
            if expiry.is_none_or(|at| SystemTime::now() + MARGIN < at) { Some((found.clone(), expiry)) } else { None };
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::auth::{Credential, Secret};

    fn found(password: &str) -> FoundCredential {
        FoundCredential {
            credential: Credential::Basic { username: "u".into(), password: Secret::new(password) },
            source: "test".into(),
        }
    }

    #[tokio::test]
    async fn live_credentials_are_fetched_once_and_expired_ones_every_time() {
        let cache = TokenCache::default();
        let calls = AtomicUsize::new(0);
        let later = SystemTime::now() + Duration::from_secs(3600);
        for _ in 0..3 {
            let got = cache
                .get_or_fetch("a", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok((found("p"), Some(later)))
                })
                .await
                .unwrap();
            assert_eq!(got.credential, found("p").credential);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let past = SystemTime::UNIX_EPOCH;
        for _ in 0..2 {
            cache
                .get_or_fetch("b", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok((found("q"), Some(past)))
                })
                .await
                .unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
