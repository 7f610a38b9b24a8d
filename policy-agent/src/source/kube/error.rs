//! What went wrong with an API call, in terms a user can act on.
//!
//! kube's errors say what failed inside the client; a user needs to know
//! which call failed (verb, resource, namespace, URL) and what to do: the
//! server is unreachable, the credentials were refused, an RBAC verb is
//! missing, or the resource is not served (a missing CRD).

use std::fmt;

use super::kinds::ResourceKind;

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// No answer: the connection could not be made or broke (refused, DNS,
    /// TLS). The text is the error chain.
    Unreachable(String),
    /// No answer in time.
    Timeout(String),
    /// 401: the credentials were refused.
    Unauthorized(String),
    /// 403: authenticated, but RBAC (or another authorizer) denies the verb.
    Forbidden(String),
    /// 404 on a collection: the server does not serve this resource.
    NotServed(String),
    /// Another status from the server.
    Status {
        /// The HTTP status code.
        code: u16,
        /// The Status reason (`InternalError`, `TooManyRequests`, ...).
        reason: String,
        /// The server's message.
        message: String,
    },
    /// An answer the client could not read.
    Invalid(String),
}

/// One failed API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCallError {
    /// What was being read.
    pub kind: ResourceKind,
    /// `list` or `get`.
    pub verb: &'static str,
    /// The namespace, for namespaced calls.
    pub namespace: Option<String>,
    /// `GET /api/v1/pods?limit=500`.
    pub request: String,
    /// The API server's URL.
    pub server: String,
    /// Why it failed.
    pub cause: FailureCause,
}

impl ApiCallError {
    /// Classifies a kube error for the call described by the other fields.
    pub fn new(
        kind: ResourceKind,
        verb: &'static str,
        namespace: Option<&str>,
        request: String,
        server: &str,
        error: &kube::Error,
    ) -> ApiCallError {
        ApiCallError {
            kind,
            verb,
            namespace: namespace.map(str::to_string),
            request,
            server: server.to_string(),
            cause: classify(error),
        }
    }

    /// Where the call applied: `in namespace shop` or `in all namespaces`.
    fn scope(&self) -> String {
        match (&self.namespace, self.kind.namespaced()) {
            (Some(namespace), _) => format!("in namespace {namespace}"),
            (None, true) => "in all namespaces".to_string(),
            (None, false) => "(cluster-scoped)".to_string(),
        }
    }

    /// What to do about it.
    pub fn help(&self) -> String {
        let can_i = match (&self.namespace, self.kind.namespaced()) {
            (Some(namespace), true) => format!(
                "kubectl auth can-i {} {} -n {namespace}",
                self.verb,
                self.kind.resource_name()
            ),
            (None, true) => format!(
                "kubectl auth can-i {} {} --all-namespaces",
                self.verb,
                self.kind.resource_name()
            ),
            (_, false) => format!(
                "kubectl auth can-i {} {}",
                self.verb,
                self.kind.resource_name()
            ),
        };
        match &self.cause {
            FailureCause::Unreachable(_) => format!(
                "check that the API server at {} is up and reachable from here, and that this is \
                 the right context (`kubectl config current-context`, `kubectl cluster-info`)",
                self.server
            ),
            FailureCause::Timeout(_) => format!(
                "the API server at {} did not answer in time; check the network, or allow longer \
                 with --request-timeout",
                self.server
            ),
            FailureCause::Unauthorized(_) => {
                "the credentials in the kubeconfig were refused: log in \
                 again or refresh the token (`kubectl get --raw /version` shows the same answer)"
                    .to_string()
            }
            FailureCause::Forbidden(_) => format!(
                "netpol needs RBAC verb `{}` on `{}` (API group \"{}\") {}; check with `{can_i}`. \
                 examples/rbac/netpol-reader.yaml is a ClusterRole with everything netpol reads{}",
                self.verb,
                self.kind.plural(),
                self.kind.group(),
                match (&self.namespace, self.kind.namespaced()) {
                    (Some(namespace), true) => format!("in namespace {namespace}"),
                    _ => "cluster-wide".to_string(),
                },
                if self.namespace.is_none() && self.kind.namespaced() {
                    "; with access to some namespaces only, read them with --namespace"
                } else {
                    ""
                }
            ),
            FailureCause::NotServed(_) => format!(
                "the API server does not serve {} {}: the API group is disabled or, for a custom \
                 resource, its CRD is not installed (`kubectl api-resources` lists what is served)",
                self.kind.api_version(),
                self.kind.plural()
            ),
            FailureCause::Status { code, .. } if *code == 429 || *code >= 500 => {
                "the API server is overloaded or failing; try again".to_string()
            }
            FailureCause::Status { .. } | FailureCause::Invalid(_) => format!(
                "the API server at {} answered something netpol cannot use",
                self.server
            ),
        }
    }
}

impl fmt::Display for ApiCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} {} {}: {} failed: ",
            self.verb,
            self.kind.plural(),
            self.scope(),
            self.request
        )?;
        match &self.cause {
            FailureCause::Unreachable(why) => write!(f, "cannot reach {}: {why}", self.server),
            FailureCause::Timeout(why) => write!(f, "timed out: {why}"),
            FailureCause::Unauthorized(message) => write!(f, "401 Unauthorized: {message}"),
            FailureCause::Forbidden(message) => write!(f, "403 Forbidden: {message}"),
            FailureCause::NotServed(message) => write!(f, "404 Not Found: {message}"),
            FailureCause::Status {
                code,
                reason,
                message,
            } => write!(f, "{code} {reason}: {message}"),
            FailureCause::Invalid(why) => write!(f, "unreadable answer: {why}"),
        }
    }
}

impl std::error::Error for ApiCallError {}

fn classify(error: &kube::Error) -> FailureCause {
    match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                401 => FailureCause::Unauthorized(message),
                403 => FailureCause::Forbidden(message),
                404 => FailureCause::NotServed(message),
                code => FailureCause::Status {
                    code,
                    reason: status.reason.clone(),
                    message,
                },
            }
        }
        kube::Error::SerdeError(e) => FailureCause::Invalid(e.to_string()),
        kube::Error::FromUtf8(e) => FailureCause::Invalid(e.to_string()),
        other => {
            let chain = causes(other);
            if is_timeout(other) {
                FailureCause::Timeout(chain)
            } else {
                FailureCause::Unreachable(chain)
            }
        }
    }
}

/// The error and its sources, `outer: inner: innermost`, without the
/// repetitions wrapped errors tend to have.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        let text = current.to_string().to_ascii_lowercase();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return true;
        }
        next = current.source();
    }
    false
}
