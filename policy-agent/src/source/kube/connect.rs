//! Finding the cluster and building a client, the way `kubectl` does.
//!
//! Precedence, as kubectl's: an explicit `--kubeconfig` file; else the files
//! in `$KUBECONFIG` (merged); else `~/.kube/config`; and when there is no
//! kubeconfig at all, the in-cluster service account. `--context` picks a
//! context of the kubeconfig instead of its `current-context`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Which cluster to talk to, as the user named it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterTarget {
    /// `--kubeconfig`: a kubeconfig file instead of `$KUBECONFIG` or
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: a context of the kubeconfig instead of its current one.
    pub context: Option<String>,
    /// `--request-timeout`: the longest one API request may take, connecting
    /// included. None: connect within [`DEFAULT_CONNECT_TIMEOUT`], no limit
    /// on the answer.
    pub request_timeout: Option<Duration>,
}

/// How long to wait for a TCP/TLS connection unless told otherwise: long
/// enough for a slow VPN, short enough that a wrong address is not a hang.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client and what it is connected to.
#[derive(Clone)]
pub struct Connection {
    /// The client.
    pub client: Client,
    /// The API server's URL.
    pub cluster_url: String,
    /// The kubeconfig context used; None for the in-cluster service account.
    pub context: Option<String>,
    /// The context's namespace (or the service account's), as kubectl
    /// uses it when no namespace is given.
    pub default_namespace: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("cluster_url", &self.cluster_url)
            .field("context", &self.context)
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// `context kind-dev (https://127.0.0.1:6443)`, or the in-cluster form.
    pub fn describe(&self) -> String {
        match &self.context {
            Some(context) => format!("context {context} ({})", self.cluster_url),
            None => format!("the in-cluster service account ({})", self.cluster_url),
        }
    }
}

/// Why no client could be built. The message says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectError(pub String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// Builds a client for `target` (see the module documentation). Nothing
/// is sent to the API server yet.
pub async fn connect(target: &ClusterTarget) -> Result<Connection, ConnectError> {
    let kubeconfig = read_kubeconfig(target)?;
    let (mut config, context) = match kubeconfig {
        Some((kubeconfig, origin)) => {
            let context = target
                .context
                .clone()
                .or_else(|| kubeconfig.current_context.clone());
            let Some(context) = context else {
                return Err(ConnectError(format!(
                    "{origin} has no current-context; pick one with --context \
                     (`kubectl config get-contexts` lists them)"
                )));
            };
            if !kubeconfig.contexts.iter().any(|c| c.name == context) {
                let known: Vec<&str> = kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(ConnectError(format!(
                    "{origin} has no context `{context}` (it has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            let options = KubeConfigOptions {
                context: Some(context.clone()),
                ..KubeConfigOptions::default()
            };
            let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| ConnectError(format!("{origin}, context `{context}`: {e}")))?;
            (config, Some(context))
        }
        None => {
            let config = Config::incluster().map_err(|e| {
                ConnectError(format!(
                    "no kubeconfig found ($KUBECONFIG is not set and ~/.kube/config does not \
                     exist) and not running in a cluster ({e}); give --kubeconfig PATH"
                ))
            })?;
            (config, None)
        }
    };
    config.connect_timeout = Some(match target.request_timeout {
        Some(limit) => limit.min(DEFAULT_CONNECT_TIMEOUT),
        None => DEFAULT_CONNECT_TIMEOUT,
    });
    if let Some(limit) = target.request_timeout {
        config.read_timeout = Some(limit);
        config.write_timeout = Some(limit);
    }
    let cluster_url = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| {
        ConnectError(format!(
            "cannot build a Kubernetes client for {cluster_url}: {}",
            super::error::causes(&e)
        ))
    })?;
    Ok(Connection {
        client,
        cluster_url: cluster_url.trim_end_matches('/').to_string(),
        context,
        default_namespace,
    })
}

/// The kubeconfig to use and how to name it in messages; None when there is
/// none and the in-cluster configuration should be tried.
fn read_kubeconfig(target: &ClusterTarget) -> Result<Option<(Kubeconfig, String)>, ConnectError> {
    if let Some(path) = &target.kubeconfig {
        let origin = format!("kubeconfig {}", path.display());
        return Kubeconfig::read_from(path)
            .map(|k| Some((k, origin.clone())))
            .map_err(|e| ConnectError(format!("cannot read {origin}: {e}")));
    }
    match Kubeconfig::from_env() {
        Ok(Some(kubeconfig)) => return Ok(Some((kubeconfig, "$KUBECONFIG".to_string()))),
        Ok(None) => {}
        Err(e) => return Err(ConnectError(format!("cannot read $KUBECONFIG: {e}"))),
    }
    let default = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config"));
    match default {
        Some(path) if path.exists() => {
            let origin = format!("kubeconfig {}", path.display());
            Kubeconfig::read_from(&path)
                .map(|k| Some((k, origin.clone())))
                .map_err(|e| ConnectError(format!("cannot read {origin}: {e}")))
        }
        _ if target.context.is_some() => Err(ConnectError(
            "--context names a kubeconfig context, but there is no kubeconfig \
             ($KUBECONFIG is not set and ~/.kube/config does not exist); give --kubeconfig PATH"
                .to_string(),
        )),
        _ => Ok(None),
    }
}
