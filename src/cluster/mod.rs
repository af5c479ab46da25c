//! The only code that talks to the Kubernetes API (kube-rs): server-side apply, prune and
//! diff of rendered objects, the per-round launcher, and round counting. Every decision
//! around the calls (what changed, what to prune, a round's verdict) is a pure function
//! here, tested on its own; the calls are tested on a real control plane (tests/k8s.rs).

pub mod apply;
pub mod mesh;
pub mod round;
pub mod status;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;

/// The field manager of everything kpatrol applies.
pub const FIELD_MANAGER: &str = "kpatrol";
/// The label selector of everything kpatrol manages.
pub const MANAGED: &str = "app.kubernetes.io/managed-by=kpatrol";

#[cfg(test)]
#[test]
fn the_managed_selector_is_the_managed_by_label() {
    use crate::names::label;
    assert_eq!(MANAGED, format!("{}={}", label::MANAGED_BY, label::MANAGER));
}

#[cfg(test)]
#[test]
fn servers_older_than_the_minimum_are_named() {
    assert_eq!(too_old("1", "28"), Some((1, 28)));
    assert_eq!(too_old("1", "28+"), Some((1, 28)));
    assert_eq!(too_old("1", "29"), None);
    assert_eq!(too_old("1", "37"), None);
    assert_eq!(too_old("2", "0"), None);
    assert_eq!(too_old("", "x"), None, "an unreadable version is not refused");
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the Kubernetes API: reading the kubeconfig timed out")]
    KubeconfigTimeout,
    #[error("cannot reach the Kubernetes API: {}", crate::probe::client::error_text(.0))]
    Kubeconfig(#[source] kube::config::InferConfigError),
    #[error("cannot reach the Kubernetes API: kubeconfig {}: {}", path.display(), crate::probe::client::error_text(.source))]
    KubeconfigFile {
        path: std::path::PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot read the server's version: {}", crate::probe::client::error_text(.source))]
    Version { source: kube::Error },
    #[error("the server runs Kubernetes {server} ({major}.{minor}); kpatrol needs {}.{} or later (docs/render.md)", MIN_VERSION.0, MIN_VERSION.1)]
    TooOld { server: String, major: u32, minor: u32 },
    #[error("cannot reach the Kubernetes API: {server}: {}", crate::probe::client::error_text(.source))]
    Client { server: String, source: kube::Error },
    #[error("{kind} {name}: {}", api_text(.source))]
    Api {
        kind: String,
        name: String,
        source: kube::Error,
    },
    #[error("kind {api_version}/{kind} is not one kpatrol renders")]
    UnknownKind { api_version: String, kind: String },
    /// A rendered object that is not a valid object of its kind.
    #[error("{object}: {source}")]
    BadObject { object: String, source: serde_json::Error },
    #[error("agents' Job template: {0}")]
    AgentsTemplate(#[from] TemplateError),
    /// A mesh round with no node to run on: it cannot run (exit 2).
    #[error("no node can take an agent: {}{}", match selector.is_empty() {
        true => "the cluster has no node".to_string(),
        false => format!("no node matches the node selector {}", selector.join(",")),
    }, match unfit.is_empty() {
        true => String::new(),
        false => format!(" that the agents can run on ({})", unfit.join("; ")),
    })]
    NoNodes { selector: Vec<String>, unfit: Vec<String> },
    #[error("the mesh's control channel: {0}")]
    Mesh(String),
    #[error("task {namespace}/{task} has no rounds yet")]
    NoRounds { namespace: String, task: String },
}

/// An API error in one line: the server's message and code for a refusal (not the whole
/// Status, which can repeat a rejected object twice), the cause chain otherwise.
fn api_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => crate::probe::client::error_text(other),
    }
}

/// What is wrong with the agents' Job template a launcher was given.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("it is not a mapping")]
    NotAMapping,
    #[error("no template.spec.containers[0]")]
    NoContainer,
    #[error("{0}")]
    NotAJob(#[source] serde_json::Error),
}

/// The kinds kpatrol renders: (apiVersion, kind, plural, namespaced).
pub const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", false),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Service", "services", true),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true),
    ("batch/v1", "CronJob", "cronjobs", true),
    ("batch/v1", "Job", "jobs", true),
];

/// The API resource of a kind kpatrol renders.
pub fn resource(api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
    let (_, _, plural, namespaced) = KINDS.iter().find(|(v, k, _, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Some((ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced))
}

/// The dynamic API for an object's kind, in its namespace.
pub fn api_for(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Api<DynamicObject>, ClusterError> {
    let (ar, namespaced) = resource(api_version, kind).ok_or_else(|| ClusterError::UnknownKind {
        api_version: api_version.into(),
        kind: kind.into(),
    })?;
    Ok(match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (true, None) => Api::default_namespaced_with(client.clone(), &ar),
        (false, _) => Api::all_with(client.clone(), &ar),
    })
}

/// The value at `path` in nested JSON objects, `None` where a step is missing or not an
/// object: what `o["a"]["b"]` reads, without indexing.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The string at `path` (see [`at`]).
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// A short name for messages: `CronJob kpatrol/api-health`.
pub fn describe(o: &Value) -> String {
    let kind = str_at(o, &["kind"]).unwrap_or("?");
    let name = str_at(o, &["metadata", "name"]).unwrap_or("?");
    match str_at(o, &["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Which cluster to talk to, as kubectl users say it: `--kubeconfig` (else `KUBECONFIG`,
/// else `~/.kube/config`, else the pod's service account) and `--context`.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
}

/// The oldest Kubernetes `apply` accepts: the rendered Jobs need `backoffLimitPerIndex`
/// (on by default from 1.29, GA in 1.33) and the `batch.kubernetes.io/job-name` label (1.27).
pub const MIN_VERSION: (u32, u32) = (1, 29);

/// The server's version (major, minor) when it is older than [`MIN_VERSION`]. Pure.
pub fn too_old(major: &str, minor: &str) -> Option<(u32, u32)> {
    // minors such as "29+" (managed clusters) count by their digits
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    };
    let v = (digits(major)?, digits(minor)?);
    (v < MIN_VERSION).then_some(v)
}

/// Refuses a server older than [`MIN_VERSION`], naming both versions.
pub async fn check_version(client: &kube::Client) -> Result<(), ClusterError> {
    let info = client
        .apiserver_version()
        .await
        .map_err(|source| ClusterError::Version { source })?;
    match too_old(&info.major, &info.minor) {
        Some((major, minor)) => Err(ClusterError::TooOld {
            server: info.git_version,
            major,
            minor,
        }),
        None => Ok(()),
    }
}

/// A client for `target`, with a bounded connect.
pub async fn client_for(target: &Target) -> Result<kube::Client, ClusterError> {
    let options = kube::config::KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let read = async {
        match &target.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| ClusterError::KubeconfigFile {
                    path: path.clone(),
                    source,
                })?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|source| ClusterError::KubeconfigFile {
                        path: path.clone(),
                        source,
                    })
            }
            None if target.context.is_some() => {
                kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|source| ClusterError::KubeconfigFile {
                        path: "KUBECONFIG or ~/.kube/config".into(),
                        source,
                    })
            }
            None => kube::Config::infer().await.map_err(ClusterError::Kubeconfig),
        }
    };
    let config = tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .map_err(|_| ClusterError::KubeconfigTimeout)??;
    client_of(config)
}

/// A client from the kubeconfig (or the pod's service account), with a bounded connect.
pub async fn client() -> Result<kube::Client, ClusterError> {
    client_for(&Target::default()).await
}

fn client_of(config: kube::Config) -> Result<kube::Client, ClusterError> {
    let mut config = config;
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    config.read_timeout = Some(std::time::Duration::from_secs(30));
    let server = config.cluster_url.to_string();
    kube::Client::try_from(config).map_err(|source| ClusterError::Client { server, source })
}
