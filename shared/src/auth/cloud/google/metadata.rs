//! The GCE/GKE metadata server: the instance's (or the GKE workload identity's) default
//! service account token, `GET http://HOST/computeMetadata/v1/instance/service-accounts/default/token`
//! with `Metadata-Flavor: Google`. It is asked only when `GCE_METADATA_HOST` names it or
//! the machine says it is Google's (`/sys/class/dmi/id/product_name`), never probed with a
//! timeout on an ordinary machine.

use std::path::PathBuf;

use super::token::{self, AccessToken};
use crate::auth::AuthError;
use crate::settings::Environment;

/// The metadata server's address on every Google machine.
const DEFAULT_HOST: &str = "169.254.169.254";
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const DMI_PRODUCT_NAME: &str = "/sys/class/dmi/id/product_name";

/// How to tell whether there is a metadata server.
#[derive(Debug)]
pub struct Detection {
    host: Option<String>,
    product_name: Option<PathBuf>,
}

#[derive(Debug)]
pub struct MetadataServer {
    /// `host[:port]`
    pub host: String,
}

impl Detection {
    pub fn from_env(env: &Environment) -> Detection {
        let host = env.trimmed("GCE_METADATA_HOST").map(str::to_string);
        Detection { host, product_name: Some(PathBuf::from(DMI_PRODUCT_NAME)) }
    }

    /// Never a metadata server (tests).
    #[cfg(test)]
    pub fn none() -> Detection {
        Detection { host: None, product_name: None }
    }

    /// The server, when `GCE_METADATA_HOST` is set or the DMI product name starts with Google
    /// ("Google Compute Engine", also on GKE nodes).
    pub fn server(&self) -> Option<MetadataServer> {
        if let Some(host) = &self.host {
            return Some(MetadataServer { host: host.clone() });
        }
        let name = std::fs::read_to_string(self.product_name.as_ref()?).ok()?;
        name.trim().starts_with("Google").then(|| MetadataServer { host: DEFAULT_HOST.to_string() })
    }
}

impl MetadataServer {
    pub fn url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.host)
    }

    /// The default service account's access token.
    pub async fn fetch(&self, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
        let url = self.url();
        let request = client.get(&url).header("Metadata-Flavor", "Google");
        let refused = format!("the metadata server at {} refused the token request", self.host);
        let answer = token::send(request, &url, &refused).await?;
        token::access_token(&answer, &url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_variable_or_a_google_product_name_means_a_metadata_server() {
        let dir = tempfile::tempdir().unwrap();
        let product = dir.path().join("product_name");
        let detection =
            |host: Option<&str>| Detection { host: host.map(str::to_string), product_name: Some(product.clone()) };
        assert!(detection(None).server().is_none(), "no file: not Google");
        std::fs::write(&product, "Standard PC (Q35 + ICH9, 2009)\n").unwrap();
        assert!(detection(None).server().is_none());
        let set = detection(Some("127.0.0.1:8080")).server().unwrap();
        assert_eq!(set.url(), "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token");
        std::fs::write(&product, "Google Compute Engine\n").unwrap();
        assert_eq!(detection(None).server().unwrap().host, DEFAULT_HOST);
        let env = Environment::from_pairs([("GCE_METADATA_HOST", " metadata.google.internal ")]);
        assert_eq!(Detection::from_env(&env).server().unwrap().host, "metadata.google.internal");
    }
}
