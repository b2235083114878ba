//! Which registry hosts are ECR's, and the API endpoint, region and signing service each one's
//! `GetAuthorizationToken` goes to. Private registries are
//! `<12-digit account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`; ECR Public is
//! `public.ecr.aws`, whose tokens come from the `ecr-public` service in us-east-1.
//! Endpoints honour `AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL_ECR_PUBLIC`, then
//! `AWS_ENDPOINT_URL`, as the AWS SDKs do.

use crate::settings::Environment;

/// The ECR Public registry host.
pub const PUBLIC_HOST: &str = "public.ecr.aws";
/// ECR Public's tokens are issued in this region only.
const PUBLIC_REGION: &str = "us-east-1";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EcrHost {
    /// `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`
    Private { account: String, region: String, fips: bool, china: bool },
    /// `public.ecr.aws`
    Public,
}

impl EcrHost {
    /// The ECR registry a host name (no port) names, if it is one.
    pub fn parse(host: &str) -> Option<EcrHost> {
        if host == PUBLIC_HOST {
            return Some(EcrHost::Public);
        }
        let (rest, china) = match host.strip_suffix(".amazonaws.com.cn") {
            Some(rest) => (rest, true),
            None => (host.strip_suffix(".amazonaws.com")?, false),
        };
        let (account, rest) = rest.split_once(".dkr.")?;
        let (service, region) = rest.split_once('.')?;
        let fips = match service {
            "ecr" => false,
            "ecr-fips" => true,
            _ => return None,
        };
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (account_ok && is_region(region)).then(|| EcrHost::Private {
            account: account.to_string(),
            region: region.to_string(),
            fips,
            china,
        })
    }

    /// The region whose ECR API issues this registry's tokens.
    pub fn region(&self) -> &str {
        match self {
            EcrHost::Private { region, .. } => region,
            EcrHost::Public => PUBLIC_REGION,
        }
    }

    /// The SigV4 signing name of the API.
    pub fn service(&self) -> &'static str {
        match self {
            EcrHost::Private { .. } => "ecr",
            EcrHost::Public => "ecr-public",
        }
    }

    /// The `AWS_ENDPOINT_URL_<SERVICE>` variable that overrides the API endpoint.
    fn endpoint_var(&self) -> &'static str {
        match self {
            EcrHost::Private { .. } => "AWS_ENDPOINT_URL_ECR",
            EcrHost::Public => "AWS_ENDPOINT_URL_ECR_PUBLIC",
        }
    }

    /// The API endpoint: the service's variable, else `AWS_ENDPOINT_URL`, else AWS's own.
    pub fn endpoint(&self, env: &Environment) -> String {
        if let Some(url) = env.trimmed(self.endpoint_var()).or_else(|| env.trimmed("AWS_ENDPOINT_URL")) {
            return url.to_string();
        }
        match self {
            EcrHost::Private { region, fips: false, china, .. } => {
                format!("https://api.ecr.{region}.amazonaws.com{}", if *china { ".cn" } else { "" })
            }
            EcrHost::Private { region, fips: true, china, .. } => {
                format!("https://ecr-fips.{region}.amazonaws.com{}", if *china { ".cn" } else { "" })
            }
            EcrHost::Public => format!("https://api.ecr-public.{PUBLIC_REGION}.amazonaws.com"),
        }
    }
}

/// `us-east-1`, `cn-north-1`, `us-gov-west-1`...: lower-case letters, digits and dashes.
fn is_region(region: &str) -> bool {
    !region.is_empty()
        && !region.starts_with('-')
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(account: &str, region: &str, fips: bool, china: bool) -> Option<EcrHost> {
        Some(EcrHost::Private { account: account.into(), region: region.into(), fips, china })
    }

    #[test]
    fn ecr_hosts_are_recognised_and_others_are_not() {
        let parse = EcrHost::parse;
        assert_eq!(
            parse("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            private("123456789012", "us-east-1", false, false)
        );
        assert_eq!(
            parse("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            private("123456789012", "us-gov-west-1", true, false)
        );
        assert_eq!(
            parse("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            private("210987654321", "cn-north-1", false, true)
        );
        assert_eq!(parse("public.ecr.aws"), Some(EcrHost::Public));
        for other in [
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "1234567890123.dkr.ecr.us-east-1.amazonaws.com",
            "12345678901a.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecs.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.us east.amazonaws.com",
            "x.123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "gcr.io",
            "ecr.aws",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn endpoints_follow_the_sdk_variables_then_aws() {
        let host = EcrHost::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
        let none = Environment::default();
        assert_eq!(host.endpoint(&none), "https://api.ecr.eu-west-1.amazonaws.com");
        let general = Environment::from_pairs([("AWS_ENDPOINT_URL", "http://127.0.0.1:1")]);
        assert_eq!(host.endpoint(&general), "http://127.0.0.1:1");
        let both = Environment::from_pairs([("AWS_ENDPOINT_URL", "http://a"), ("AWS_ENDPOINT_URL_ECR", "http://b")]);
        assert_eq!(host.endpoint(&both), "http://b");
        assert_eq!(EcrHost::Public.endpoint(&both), "http://a");
        assert_eq!(EcrHost::Public.endpoint(&none), "https://api.ecr-public.us-east-1.amazonaws.com");
        let china = EcrHost::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").unwrap();
        assert_eq!(china.endpoint(&none), "https://api.ecr.cn-north-1.amazonaws.com.cn");
        let fips = EcrHost::parse("123456789012.dkr.ecr-fips.us-east-2.amazonaws.com").unwrap();
        assert_eq!(fips.endpoint(&none), "https://ecr-fips.us-east-2.amazonaws.com");
        assert_eq!((fips.region(), fips.service()), ("us-east-2", "ecr"));
        assert_eq!((EcrHost::Public.region(), EcrHost::Public.service()), ("us-east-1", "ecr-public"));
    }
}
