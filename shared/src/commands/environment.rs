//! The `from_env()` constructors that code not yet handed an [`Environment`] still calls
//! (`commands/setup.rs`): each is the typed constructor applied to the process's environment,
//! which the command layer owns. They live here, not beside their types, so that the library
//! modules themselves never reach for the process's environment.

use crate::auth::{AuthError, Keychain};
use crate::cache::{Cache, CacheError};
use crate::gobuild::GoTool;
use crate::settings::Environment;

impl Cache {
    /// [`Cache::open`] in the process's environment.
    pub fn from_env() -> Result<Cache, CacheError> {
        Cache::open(Environment::process())
    }
}

impl Keychain {
    /// [`Keychain::new`] in the process's environment.
    pub fn from_env() -> Result<Keychain, AuthError> {
        Keychain::new(Environment::process())
    }
}

impl GoTool {
    /// [`GoTool::new`] in the process's environment.
    pub fn from_env() -> GoTool {
        GoTool::new(Environment::process())
    }
}
