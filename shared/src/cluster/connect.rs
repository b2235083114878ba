//! A client for the cluster kubectl would talk to: `--kubeconfig` or `KUBECONFIG` (a path list,
//! merged as kubectl merges it) or `~/.kube/config`, then `--context`, `--cluster`, `--user`,
//! and `-n` over the context's namespace.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::ClusterError;
use crate::settings::Environment;

/// Which cluster to talk to and as whom, in kubectl's terms; the command layer builds it from
/// its flags (`--kubeconfig`, `--context`, `--cluster`, `--user`, `-n`), an empty one as none.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
}

/// A connected cluster.
pub struct Cluster {
    pub client: Client,
    /// The API server's URL, for messages.
    pub server: String,
    /// The namespace for namespaced objects that name none.
    pub namespace: String,
    /// Whether `-n` was given (then an object naming another namespace is an error).
    pub namespace_flag: Option<String>,
}

fn default_kubeconfig(env: &Environment) -> PathBuf {
    env.path_or_empty("HOME").join(".kube").join("config")
}

fn read_kubeconfig(args: &Connection, env: &Environment) -> Result<(Kubeconfig, String), ClusterError> {
    let fail =
        |name: String, e: &dyn std::fmt::Display| ClusterError::Kubeconfig { source_name: name, detail: e.to_string() };
    if let Some(path) = &args.kubeconfig {
        if !path.exists() {
            return Err(ClusterError::NoKubeconfig { path: path.clone() });
        }
        let name = path.display().to_string();
        return Kubeconfig::read_from(path).map(|k| (k, name.clone())).map_err(|e| fail(name, &e));
    }
    if let Some(list) = env.non_empty("KUBECONFIG") {
        let name = format!("KUBECONFIG={}", list.to_string_lossy());
        let paths: Vec<PathBuf> = std::env::split_paths(&list).filter(|p| p.exists()).collect();
        if paths.is_empty() {
            return Err(ClusterError::NoKubeconfig { path: PathBuf::from(list) });
        }
        // Merged in order, the first file to set a value winning; missing files are skipped,
        // as kubectl skips them.
        let mut merged: Option<Kubeconfig> = None;
        for path in &paths {
            let next = Kubeconfig::read_from(path).map_err(|e| fail(path.display().to_string(), &e))?;
            merged = Some(match merged {
                None => next,
                Some(done) => done.merge(next).map_err(|e| fail(name.clone(), &e))?,
            });
        }
        return merged.map(|k| (k, name)).ok_or(ClusterError::NoKubeconfig { path: PathBuf::from(list) });
    }
    let path = default_kubeconfig(env);
    if !path.exists() {
        return Err(ClusterError::NoKubeconfig { path });
    }
    let name = path.display().to_string();
    Kubeconfig::read_from(&path).map(|k| (k, name.clone())).map_err(|e| fail(name, &e))
}

/// Whether this process runs in a pod whose service account kubectl would use when it finds no
/// kubeconfig: the service's address in the environment and the account's token mounted.
fn in_cluster(env: &Environment) -> bool {
    env.non_empty("KUBERNETES_SERVICE_HOST").is_some()
        && env.non_empty("KUBERNETES_SERVICE_PORT").is_some()
        && std::path::Path::new(SERVICE_ACCOUNT_TOKEN).is_file()
}

/// Where a pod's service account token is mounted (kube reads it there).
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A name `--context`, `--cluster` or `--user` gives must be in the kubeconfig: kube would
/// otherwise go on without it (a missing user is no credentials at all).
fn check_names(kubeconfig: &Kubeconfig, args: &Connection, source_name: &str) -> Result<(), ClusterError> {
    let checks: [(&str, &str, &Option<String>, Vec<&str>); 3] = [
        ("context", "--context", &args.context, kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect()),
        ("cluster", "--cluster", &args.cluster, kubeconfig.clusters.iter().map(|c| c.name.as_str()).collect()),
        ("user", "--user", &args.user, kubeconfig.auth_infos.iter().map(|u| u.name.as_str()).collect()),
    ];
    for (what, flag, wanted, names) in checks {
        if let Some(wanted) = wanted
            && !names.contains(&wanted.as_str())
        {
            let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            return Err(ClusterError::Kubeconfig {
                source_name: source_name.to_string(),
                detail: format!("{what} {wanted:?} does not exist (its {what}s: {known}); fix {flag}"),
            });
        }
    }
    Ok(())
}

/// The client's configuration and the context's name (for messages): from the kubeconfig, or
/// in a pod without one, from its service account, as kubectl does.
async fn configure(args: &Connection, env: &Environment) -> Result<(Config, String), ClusterError> {
    let (kubeconfig, source_name) = match read_kubeconfig(args, env) {
        Err(ClusterError::NoKubeconfig { .. }) if args.kubeconfig.is_none() && in_cluster(env) => {
            let config = Config::incluster().map_err(|e| ClusterError::Kubeconfig {
                source_name: "the pod's service account (KUBERNETES_SERVICE_HOST)".into(),
                detail: e.to_string(),
            })?;
            return Ok((config, "in-cluster".into()));
        }
        read => read?,
    };
    check_names(&kubeconfig, args, &source_name)?;
    let context = args.context.clone().or_else(|| kubeconfig.current_context.clone()).unwrap_or_default();
    let options =
        KubeConfigOptions { context: args.context.clone(), cluster: args.cluster.clone(), user: args.user.clone() };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| ClusterError::Kubeconfig { source_name, detail: e.to_string() })?;
    Ok((config, context))
}

/// Connects and checks that the API server answers. `&KubeArgs` (the flags) converts into
/// the [`Connection`]; `env` gives `KUBECONFIG` and `HOME`.
pub async fn connect(connection: impl Into<Connection>, env: &Environment) -> Result<Cluster, ClusterError> {
    let args = &connection.into();
    // kube and reqwest share rustls; ring is the one provider compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mut config, context) = configure(args, env).await?;
    // Empty flags (`-n "$NS"` with the variable unset) were dropped with the conversion.
    let flag = args.namespace.clone();
    if let Some(namespace) = &flag {
        config.default_namespace = namespace.clone();
    }
    let server = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| ClusterError::Unreachable {
        server: server.clone(),
        context: context.clone(),
        detail: e.to_string(),
    })?;
    match client.apiserver_version().await {
        Ok(_) => Ok(Cluster { client, server, namespace, namespace_flag: flag }),
        // Reached, but the credentials were refused.
        Err(kube::Error::Api(status)) if status.code == 401 => Err(ClusterError::Unauthorized { server, context }),
        Err(e) => Err(ClusterError::Unreachable { server, context, detail: describe(&e) }),
    }
}

/// A kube error of a call about one object, as one line: as [`describe`], and a cluster that
/// went away since the run connected (a watch outlives it) is said to be unreachable.
pub fn describe_call(error: &kube::Error) -> String {
    match error {
        kube::Error::Service(_) | kube::Error::HyperError(_) => {
            format!("cannot reach the Kubernetes API server ({}); check that the cluster is running", describe(error))
        }
        _ => describe(error),
    }
}

/// A kube error as one line: the API's own message when there is one, else the causes.
pub fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        // The reason first, as kubectl's "Error from server (AlreadyExists): ..." has it, so
        // that scripts looking for it find it.
        let (reason, message) = (&status.reason, &status.message);
        return if message.is_empty() {
            format!("{reason} ({})", status.code)
        } else if reason.is_empty() || message.eq_ignore_ascii_case(reason) {
            message.clone()
        } else {
            format!("{reason}: {message}")
        };
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_finds_no_server_says_so() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "tcp connect error: Connection refused");
        let text = describe_call(&kube::Error::Service(Box::new(refused)));
        assert!(text.starts_with("cannot reach the Kubernetes API server ("), "{text}");
        assert!(text.contains("Connection refused") && text.ends_with("check that the cluster is running"), "{text}");
        let status = kube::core::Status::failure("configmaps \"x\" not found", "NotFound").with_code(404);
        assert_eq!(describe_call(&kube::Error::Api(Box::new(status))), "NotFound: configmaps \"x\" not found");
    }
}
