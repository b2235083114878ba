//! Cloud registries with no login step (issue 22): each cloud's documented endpoints stood up
//! on loopback (moto for AWS; Python token and metadata servers for Google and Azure, in
//! tests/cloud/) in front of a real registry with TLS and basic auth under a name that
//! matches the cloud's host pattern ([`crate::registries::AuthRegistry::tls_htpasswd`]).

mod aws;
mod azure;
mod google;
