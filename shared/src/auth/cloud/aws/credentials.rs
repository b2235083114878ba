//! AWS credentials and the chain that finds them, in the SDKs' order: the access-key
//! variables, web identity from the environment (how EKS pods get credentials), the shared
//! profile files, the container credentials endpoint (ECS, EKS Pod Identity), then EC2's
//! instance metadata. The first that is configured answers; none configured is `None`, so the
//! keychain goes on silently. Each credential remembers where it came from, for messages.

use std::path::PathBuf;

use super::{metadata, profile, sts};
use crate::auth::cloud::CloudHttp;
use crate::auth::{AuthError, Secret};
use crate::settings::Environment;

/// Where EC2 (and other hypervisors) publish the machine's vendor.
const DMI_DIR: &str = "/sys/devices/virtual/dmi/id";

/// An access key, with a session token when it is temporary.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// Where they were found: `AWS_ACCESS_KEY_ID`, `profile ci in /home/u/.aws/credentials`...
    pub origin: String,
}

/// What the chain reads: the environment, the HTTP client for STS and the metadata
/// endpoints, the region STS is asked in, and where the machine's vendor is published.
pub struct Chain<'a> {
    pub env: &'a Environment,
    pub http: &'a CloudHttp,
    /// `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's `region`; else the registry's.
    pub fallback_region: &'a str,
    pub dmi_dir: PathBuf,
}

impl<'a> Chain<'a> {
    pub fn new(env: &'a Environment, http: &'a CloudHttp, fallback_region: &'a str) -> Chain<'a> {
        Chain { env, http, fallback_region, dmi_dir: PathBuf::from(DMI_DIR) }
    }

    /// The first credentials the chain finds, `None` when nothing is configured.
    pub async fn resolve(&self) -> Result<Option<AwsCredentials>, AuthError> {
        if let Some(found) = from_environment(self.env)? {
            return Ok(Some(found));
        }
        let profile = profile::Profile::load(self.env)?;
        if let Some(found) = sts::from_environment(self, profile.as_ref()).await? {
            return Ok(Some(found));
        }
        if let Some(found) = profile::credentials(self, profile.as_ref()).await? {
            return Ok(Some(found));
        }
        if let Some(found) = metadata::container(self).await? {
            return Ok(Some(found));
        }
        metadata::instance(self).await
    }

    /// The region STS is asked in: the variables, then the profile's, then the registry's.
    pub fn region(&self, profile: Option<&profile::Profile>) -> String {
        let from_env = self.env.trimmed("AWS_REGION").or_else(|| self.env.trimmed("AWS_DEFAULT_REGION"));
        from_env.or_else(|| profile.and_then(|p| p.get("region"))).unwrap_or(self.fallback_region).to_string()
    }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional `AWS_SESSION_TOKEN`. One of
/// the pair without the other is an error rather than a silent fall-through.
fn from_environment(env: &Environment) -> Result<Option<AwsCredentials>, AuthError> {
    let id = env.trimmed("AWS_ACCESS_KEY_ID");
    let secret = env.trimmed("AWS_SECRET_ACCESS_KEY");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(AwsCredentials {
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret),
            session_token: env.trimmed("AWS_SESSION_TOKEN").map(Secret::new),
            origin: "AWS_ACCESS_KEY_ID".to_string(),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err(super::error("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both or neither"))
        }
        (None, Some(_)) => {
            Err(super::error("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both or neither"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(pairs: &[(&str, &str)]) -> Result<Option<AwsCredentials>, AuthError> {
        let env = Environment::from_pairs(pairs.iter().copied());
        let http = CloudHttp::new(&env, &[]);
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain { env: &env, http: &http, fallback_region: "us-east-1", dmi_dir: dir.path().into() };
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(chain.resolve())
    }

    #[test]
    fn access_keys_come_first_and_half_a_pair_is_an_error() {
        let found = resolve(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("HOME", "/nonexistent"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((found.access_key_id.as_str(), found.origin.as_str()), ("AKID", "AWS_ACCESS_KEY_ID"));
        assert_eq!(found.session_token.as_ref().map(Secret::expose), Some("tok"));
        let half = resolve(&[("AWS_ACCESS_KEY_ID", "AKID")]).unwrap_err().to_string();
        assert_eq!(half, "ECR: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both or neither");
        let other = resolve(&[("AWS_SECRET_ACCESS_KEY", "s3cr3t")]).unwrap_err().to_string();
        assert!(other.contains("AWS_ACCESS_KEY_ID is not") && !other.contains("s3cr3t"), "{other}");
    }

    #[test]
    fn nothing_configured_is_none_without_probing_anything() {
        let home = tempfile::tempdir().unwrap();
        let found = resolve(&[("HOME", home.path().to_str().unwrap())]).unwrap();
        assert!(found.is_none());
    }

    #[test]
    fn the_sts_region_is_the_variables_then_the_registry() {
        let env = Environment::from_pairs([("AWS_DEFAULT_REGION", "eu-west-3")]);
        let http = CloudHttp::new(&env, &[]);
        assert_eq!(Chain::new(&env, &http, "us-east-1").region(None), "eu-west-3");
        let env = Environment::from_pairs([("AWS_DEFAULT_REGION", "eu-west-3"), ("AWS_REGION", "ap-south-1")]);
        assert_eq!(Chain::new(&env, &http, "us-east-1").region(None), "ap-south-1");
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".aws/config"), "[default]\nregion = ap-northeast-1\n").unwrap();
        let env = Environment::from_pairs([("HOME", home.path())]);
        let profile = profile::Profile::load(&env).unwrap();
        assert_eq!(Chain::new(&env, &http, "us-east-1").region(profile.as_ref()), "ap-northeast-1");
        assert_eq!(Chain::new(&env, &http, "us-east-1").region(None), "us-east-1");
    }
}
