//! Azure Container Registry: not filled in yet (issue 22).

use std::sync::Arc;

use super::CloudHttp;
use crate::auth::Source;
use crate::settings::Environment;

/// The source for this cloud, when the environment configures it.
pub fn source(_env: &Environment, _http: &Arc<CloudHttp>) -> Option<Box<dyn Source>> {
    None
}
