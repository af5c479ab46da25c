//! A pod's folder before its processes start: volumes written, mounts linked, the service
//! account's token minted, each container's program, args and environment resolved (the
//! downward API, ConfigMap and Secret keys, `$(VAR)`, and the path rewrite rule of the crate
//! header).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::Ctx;
use crate::api::{CallError, call};

/// kpatrol's mounts root in its pods (`src/probe` DEFAULT_MOUNTS, `src/render` MOUNT_ROOT).
pub const KPATROL_MOUNTS: &str = "/etc/kpatrol";
/// Where Kubernetes puts a pod's service account credentials.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// A token's life (the kubelet asks for 3607 s too).
const TOKEN_SECONDS: i64 = 3607;

/// A container ready to start.
#[derive(Clone, Debug)]
pub struct Launch {
    pub name: String,
    pub image: String,
    /// The binary, or why the container cannot run.
    pub program: Result<PathBuf, String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// stdout and stderr, appended.
    pub log: PathBuf,
    /// The termination-message file (`KPATROL_TERMINATION_LOG`).
    pub term_log: PathBuf,
    /// `terminationMessagePolicy: FallbackToLogsOnError`
    pub fallback_to_logs: bool,
    /// `restartPolicy: Always` on an init container: a sidecar, not run.
    pub sidecar: bool,
}

#[derive(Debug)]
pub struct Prepared {
    pub init: Vec<Launch>,
    pub main: Vec<Launch>,
}

/// Why a pod's containers cannot be created yet (a missing ConfigMap, Secret or
/// ServiceAccount, an API error): retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Problem(pub String);

impl From<CallError> for Problem {
    fn from(e: CallError) -> Self {
        Problem(e.to_string())
    }
}

impl From<std::io::Error> for Problem {
    fn from(e: std::io::Error) -> Self {
        Problem(format!("writing the pod's files: {e}"))
    }
}

/// `DIR/pods/<ns>_<name>_<uid>`
pub fn folder(ctx: &Ctx, ns: &str, name: &str, uid: &str) -> PathBuf {
    ctx.pods_dir.join(format!("{ns}_{name}_{uid}"))
}

/// `root` + absolute `path` (`/etc/x` → `root/etc/x`); `..` and `.` parts dropped.
pub fn under(root: &Path, path: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in Path::new(path).components() {
        if let Component::Normal(s) = c {
            p.push(s);
        }
    }
    p
}

/// The path rewrite rule (crate header): `value` mapped to the pod's root when it is an
/// absolute path at, below or above one of `mounts`, alone or after the first `=`; the
/// termination message path becomes the termination log.
pub fn rewrite(value: &str, mounts: &[String], root: &Path, term: (&str, &Path)) -> String {
    if value == term.0 {
        return term.1.display().to_string();
    }
    if let Some(p) = map_path(value, mounts, root) {
        return p;
    }
    if let Some((flag, rest)) = value.split_once('=')
        && let Some(p) = map_path(rest, mounts, root)
    {
        return format!("{flag}={p}");
    }
    value.to_string()
}

fn map_path(v: &str, mounts: &[String], root: &Path) -> Option<String> {
    let t = v.trim_end_matches('/');
    if !v.starts_with('/') || t.is_empty() {
        return None;
    }
    let hit = mounts.iter().any(|m| {
        let m = m.trim_end_matches('/');
        t == m || t.starts_with(&format!("{m}/")) || m.starts_with(&format!("{t}/"))
    });
    hit.then(|| {
        let mut s = under(root, v).display().to_string();
        if v.ends_with('/') {
            s.push('/');
        }
        s
    })
}

/// `$(VAR)` expanded as Kubernetes does: a defined name is replaced, an undefined one stays as
/// written, `$$` is `$`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('(') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ')' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                match (closed, closed.then(|| lookup(&name)).flatten()) {
                    (true, Some(v)) => out.push_str(&v),
                    (true, None) => {
                        out.push_str("$(");
                        out.push_str(&name);
                        out.push(')');
                    }
                    (false, _) => {
                        out.push_str("$(");
                        out.push_str(&name);
                    }
                }
            }
            _ => out.push('$'),
        }
    }
    out
}

/// Sets `name` in an ordered environment, replacing an earlier value.
fn set(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(e) => e.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

fn get(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A downward API field of the pod (`None` for one this kubelet does not know).
pub fn field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    let key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
            .map(str::to_string)
    };
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map(&meta.labels),
        "metadata.annotations" => map(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" => pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
        "status.podIPs" => pod
            .status
            .iter()
            .flat_map(|s| s.pod_ips.iter().flatten())
            .map(|p| p.ip.as_str())
            .collect::<Vec<_>>()
            .join(","),
        // (under --netns the node's address: the pod's status says so; the downward API
        // keeps the loopback address the pods' forwarders listen on)
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".into(),
        _ => {
            if let Some(k) = key("metadata.labels['").or_else(|| key("metadata.labels[\"")) {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = key("metadata.annotations['").or_else(|| key("metadata.annotations[\"")) {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// A Kubernetes quantity in base units (`100m` → 0.1, `1Gi` → 1073741824).
pub fn quantity(q: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let q = q.trim();
    if let Ok(v) = q.parse::<f64>() {
        return Some(v);
    }
    SUFFIXES
        .iter()
        .find_map(|(s, f)| q.strip_suffix(s).and_then(|n| n.parse::<f64>().ok()).map(|n| n * f))
}

/// A `resourceFieldRef` of container `c`: its request or limit (a missing limit is the node's
/// allocatable, a missing request the limit or 0) over the divisor, rounded up.
pub fn resource(c: Option<&Container>, sel: &ResourceFieldSelector) -> String {
    let (kind, name) = sel
        .resource
        .split_once('.')
        .unwrap_or(("limits", sel.resource.as_str()));
    let res = c.and_then(|c| c.resources.as_ref());
    let lookup = |m: Option<&BTreeMap<String, Quantity>>| m.and_then(|m| m.get(name)).and_then(|q| quantity(&q.0));
    let limit = lookup(res.and_then(|r| r.limits.as_ref()));
    let request = lookup(res.and_then(|r| r.requests.as_ref()));
    let node = match name {
        "cpu" => quantity(crate::node::CPU),
        "memory" => quantity(crate::node::MEMORY),
        _ => None,
    };
    let v = match kind {
        "requests" => request.or(limit).unwrap_or(0.0),
        _ => limit.or(node).unwrap_or(0.0),
    };
    let divisor = sel
        .divisor
        .as_ref()
        .and_then(|d| quantity(&d.0))
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    format!("{}", (v / divisor).ceil() as i64)
}

/// Reads what a pod refers to, once each.
struct Reader<'a> {
    ctx: &'a Ctx,
    pod: &'a Pod,
    ns: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Reader<'_> {
    async fn config_map(&mut self, name: &str, optional: Option<bool>) -> Result<Option<ConfigMap>, Problem> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.ns);
            let got = call(api.get_opt(name)).await?;
            self.config_maps.insert(name.to_string(), got);
        }
        match self.config_maps.get(name).cloned().flatten() {
            Some(c) => Ok(Some(c)),
            None if optional == Some(true) => Ok(None),
            None => Err(Problem(format!("configmap \"{name}\" not found"))),
        }
    }

    async fn secret(&mut self, name: &str, optional: Option<bool>) -> Result<Option<Secret>, Problem> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.ns);
            let got = call(api.get_opt(name)).await?;
            self.secrets.insert(name.to_string(), got);
        }
        match self.secrets.get(name).cloned().flatten() {
            Some(s) => Ok(Some(s)),
            None if optional == Some(true) => Ok(None),
            None => Err(Problem(format!("secret \"{name}\" not found"))),
        }
    }

    /// A token of the pod's service account, bound to the pod; the API server's default
    /// audience when `audience` is `None`.
    async fn token(&self, sa: &str, audience: Option<&str>, seconds: Option<i64>) -> Result<String, Problem> {
        let api: Api<ServiceAccount> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                expiration_seconds: Some(seconds.unwrap_or(TOKEN_SECONDS).max(600)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: self.pod.metadata.name.clone(),
                    uid: self.pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let got = call(api.create_token_request(sa, &PostParams::default(), &req))
            .await
            .map_err(|e| Problem(format!("token of serviceaccount \"{sa}\": {e}")))?;
        got.status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Problem(format!("token of serviceaccount \"{sa}\": none in the answer")))
    }
}

/// Writes one file of a volume, `path` relative (a path leaving the folder is refused).
fn write_file(dir: &Path, path: &str, data: &[u8]) -> Result<(), Problem> {
    let rel = Path::new(path);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Problem(format!(
            "volume file path {path:?} is not a plain relative path"
        )));
    }
    let file = dir.join(rel);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&file, data)?;
    Ok(())
}

/// The keys of a ConfigMap or Secret as files: `items` when given (a missing key is an error
/// unless optional), else every key.
fn write_keys(
    dir: &Path,
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
) -> Result<(), Problem> {
    match items {
        Some(items) => {
            for i in items {
                match data.get(&i.key) {
                    Some(v) => write_file(dir, &i.path, v)?,
                    None if optional => {}
                    None => return Err(Problem(format!("{what}: no key \"{}\"", i.key))),
                }
            }
        }
        None => {
            for (k, v) in data {
                write_file(dir, k, v)?;
            }
        }
    }
    Ok(())
}

fn config_map_data(c: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> = c
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    m.extend(c.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    m
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> = s
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    m.extend(s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    m
}

fn downward_files(dir: &Path, pod: &Pod, items: Option<&Vec<DownwardAPIVolumeFile>>) -> Result<(), Problem> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    for i in items.into_iter().flatten() {
        let value = if let Some(f) = &i.field_ref {
            field(pod, &f.field_path).unwrap_or_default()
        } else if let Some(r) = &i.resource_field_ref {
            let c = containers
                .iter()
                .find(|c| Some(&c.name) == r.container_name.as_ref())
                .or(containers.first());
            resource(c, r)
        } else {
            String::new()
        };
        write_file(dir, &i.path, value.as_bytes())?;
    }
    Ok(())
}

/// The service account whose token the pod's processes get, when they get one.
async fn automount(r: &Reader<'_>) -> Result<Option<String>, Problem> {
    let spec = r.pod.spec.as_ref();
    let sa = spec
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    match spec.and_then(|s| s.automount_service_account_token) {
        Some(false) => Ok(None),
        Some(true) => Ok(Some(sa)),
        None => {
            let api: Api<ServiceAccount> = Api::namespaced(r.ctx.client.clone(), &r.ns);
            match call(api.get_opt(&sa)).await? {
                None => Err(Problem(format!("serviceaccount \"{sa}\" not found"))),
                Some(a) => Ok((a.automount_service_account_token != Some(false)).then_some(sa)),
            }
        }
    }
}

/// A kubeconfig for the pod: the API server as the kubelet knows it, and `token`.
fn kubeconfig(ctx: &Ctx, ns: &str, token: &str, ca_file: Option<&Path>) -> String {
    let mut cluster = json!({ "server": ctx.server.url });
    if let Some(o) = cluster.as_object_mut() {
        if let Some(f) = ca_file {
            o.insert("certificate-authority".into(), json!(f.display().to_string()));
        }
        if ctx.server.insecure {
            o.insert("insecure-skip-tls-verify".into(), json!(true));
        }
    }
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "pod", "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": "pod", "namespace": ns}}],
        "current-context": "pod",
    });
    format!("{kc:#}\n")
}

/// Writes the pod's folder and resolves its containers.
pub async fn prepare(ctx: &Ctx, pod: &Pod, folder: &Path) -> Result<Prepared, Problem> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut r = Reader {
        ctx,
        pod,
        ns: ns.clone(),
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    // a retry starts afresh
    let root = folder.join("root");
    let volumes = folder.join("volumes");
    for d in [&root, &volumes] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
        std::fs::create_dir_all(d)?;
    }
    let ca_file = match &ctx.server.ca_pem {
        Some(pem) => {
            let f = folder.join("ca.crt");
            std::fs::write(&f, pem)?;
            Some(f)
        }
        None => None,
    };
    // the service account's token and kubeconfig
    let sa = automount(&r).await?;
    let token = match &sa {
        Some(sa) => {
            let t = r.token(sa, None, None).await?;
            std::fs::write(folder.join("kubeconfig"), kubeconfig(ctx, &ns, &t, ca_file.as_deref()))?;
            Some(t)
        }
        None => None,
    };
    // volumes
    for v in spec.volumes.iter().flatten() {
        let dir = volumes.join(&v.name);
        std::fs::create_dir_all(&dir)?;
        if let Some(c) = &v.config_map {
            if let Some(cm) = r.config_map(&c.name, c.optional).await? {
                let what = format!("configmap \"{}\"", c.name);
                write_keys(
                    &dir,
                    &what,
                    &config_map_data(&cm),
                    c.items.as_ref(),
                    c.optional == Some(true),
                )?;
            }
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            if let Some(sec) = r.secret(&name, s.optional).await? {
                let what = format!("secret \"{name}\"");
                write_keys(
                    &dir,
                    &what,
                    &secret_data(&sec),
                    s.items.as_ref(),
                    s.optional == Some(true),
                )?;
            }
        } else if let Some(p) = &v.projected {
            for src in p.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let sa = spec
                        .service_account_name
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "default".into());
                    let tok = r.token(&sa, t.audience.as_deref(), t.expiration_seconds).await?;
                    write_file(&dir, &t.path, tok.as_bytes())?;
                }
                if let Some(c) = &src.config_map
                    && let Some(cm) = r.config_map(&c.name, c.optional).await?
                {
                    let what = format!("configmap \"{}\"", c.name);
                    write_keys(
                        &dir,
                        &what,
                        &config_map_data(&cm),
                        c.items.as_ref(),
                        c.optional == Some(true),
                    )?;
                }
                if let Some(s) = &src.secret
                    && let Some(sec) = r.secret(&s.name, s.optional).await?
                {
                    let what = format!("secret \"{}\"", s.name);
                    write_keys(
                        &dir,
                        &what,
                        &secret_data(&sec),
                        s.items.as_ref(),
                        s.optional == Some(true),
                    )?;
                }
                if let Some(d) = &src.downward_api {
                    downward_files(&dir, pod, d.items.as_ref())?;
                }
            }
        } else if let Some(d) = &v.downward_api {
            downward_files(&dir, pod, d.items.as_ref())?;
        } else if v.empty_dir.is_none() {
            log!(
                "{ns}/{}: volume {:?} is of a kind this kubelet does not have: an empty folder",
                pod.metadata.name.as_deref().unwrap_or_default(),
                v.name
            );
        }
    }
    let mut init = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let mut l = container(&mut r, c, folder, &root, &volumes, token.is_some()).await?;
        l.sidecar = c.restart_policy.as_deref() == Some("Always");
        init.push(l);
    }
    let mut main = Vec::new();
    for c in &spec.containers {
        main.push(container(&mut r, c, folder, &root, &volumes, token.is_some()).await?);
    }
    // the usual service account files, unless a volume put them there
    if let Some(t) = &token {
        let sa_dir = under(&root, SA_DIR);
        if !sa_dir.exists() {
            std::fs::create_dir_all(&sa_dir)?;
            std::fs::write(sa_dir.join("token"), t)?;
            std::fs::write(sa_dir.join("namespace"), &ns)?;
            if let Some(pem) = &ctx.server.ca_pem {
                std::fs::write(sa_dir.join("ca.crt"), pem)?;
            }
        }
    }
    Ok(Prepared { init, main })
}

/// One container: its mounts linked under `root`, its program, args and environment.
async fn container(
    r: &mut Reader<'_>,
    c: &Container,
    folder: &Path,
    root: &Path,
    volumes: &Path,
    token: bool,
) -> Result<Launch, Problem> {
    let ctx = r.ctx;
    let mut mounts: Vec<String> = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let target = under(root, &m.mount_path);
        let mut source = volumes.join(&m.name);
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            source = under(&source, sub);
        }
        if !source.exists() {
            std::fs::create_dir_all(&source)?;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::symlink_metadata(&target).is_err() {
            std::os::unix::fs::symlink(&source, &target)?;
        }
        mounts.push(m.mount_path.clone());
    }
    if token && !mounts.iter().any(|m| m.trim_end_matches('/') == SA_DIR) {
        mounts.push(SA_DIR.into());
    }
    let term_log = folder.join(format!("{}.termination-log", c.name));
    let term_path = c.termination_message_path.as_deref().unwrap_or("/dev/termination-log");
    // the environment: the API server's Service, envFrom, env
    let mut env: Vec<(String, String)> = vec![
        ("KUBERNETES_SERVICE_HOST".into(), ctx.server.host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), ctx.server.port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), ctx.server.port.to_string()),
    ];
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(cm) = &from.config_map_ref {
            r.config_map(&cm.name, cm.optional)
                .await?
                .map(|c| config_map_data(&c))
                .unwrap_or_default()
        } else if let Some(s) = &from.secret_ref {
            r.secret(&s.name, s.optional)
                .await?
                .map(|s| secret_data(&s))
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        for (k, v) in data {
            set(
                &mut env,
                &format!("{prefix}{k}"),
                String::from_utf8_lossy(&v).into_owned(),
            );
        }
    }
    for v in c.env.iter().flatten() {
        let value = if let Some(from) = &v.value_from {
            if let Some(f) = &from.field_ref {
                field(r.pod, &f.field_path).unwrap_or_default()
            } else if let Some(res) = &from.resource_field_ref {
                resource(Some(c), res)
            } else if let Some(k) = &from.config_map_key_ref {
                match r.config_map(&k.name, k.optional).await? {
                    None => continue,
                    Some(cm) => match config_map_data(&cm).get(&k.key) {
                        Some(b) => String::from_utf8_lossy(b).into_owned(),
                        None if k.optional == Some(true) => continue,
                        None => return Err(Problem(format!("configmap \"{}\": no key \"{}\"", k.name, k.key))),
                    },
                }
            } else if let Some(k) = &from.secret_key_ref {
                match r.secret(&k.name, k.optional).await? {
                    None => continue,
                    Some(s) => match secret_data(&s).get(&k.key) {
                        Some(b) => String::from_utf8_lossy(b).into_owned(),
                        None if k.optional == Some(true) => continue,
                        None => return Err(Problem(format!("secret \"{}\": no key \"{}\"", k.name, k.key))),
                    },
                }
            } else {
                String::new()
            }
        } else {
            let so_far = env.clone();
            expand(v.value.as_deref().unwrap_or_default(), &|n| get(&so_far, n))
        };
        set(&mut env, &v.name, value);
    }
    // the path rewrite rule
    for e in &mut env {
        e.1 = rewrite(&e.1, &mounts, root, (term_path, &term_log));
    }
    let lookup = |n: &str| get(&env, n);
    let command: Vec<String> = c.command.iter().flatten().map(|a| expand(a, &lookup)).collect();
    let mut args: Vec<String> = command.iter().skip(1).cloned().collect();
    args.extend(c.args.iter().flatten().map(|a| expand(a, &lookup)));
    let args = args
        .iter()
        .map(|a| rewrite(a, &mounts, root, (term_path, &term_log)))
        .collect();
    let program = match command.first() {
        None => Err(format!(
            "container {:?} has no command: this kubelet runs a binary of --bin-dir, not an image's entrypoint",
            c.name
        )),
        Some(cmd) => {
            let base = Path::new(cmd).file_name().map(|b| b.to_os_string()).unwrap_or_default();
            let p = ctx.bin_dir.join(&base);
            if !base.is_empty() && p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "command {cmd:?}: no executable {:?} in {} (this kubelet runs kpatrol's binaries)",
                    base,
                    ctx.bin_dir.display()
                ))
            }
        }
    };
    // what the kubelet adds
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    if get(&env, "PATH").is_none() {
        set(&mut env, "PATH", path);
    }
    if get(&env, "HOME").is_none() {
        set(&mut env, "HOME", folder.display().to_string());
    }
    if token {
        set(&mut env, "KUBECONFIG", folder.join("kubeconfig").display().to_string());
    }
    set(&mut env, "KPATROL_TERMINATION_LOG", term_log.display().to_string());
    if ctx.net.is_none() {
        // pods share the host's network here: a mesh agent serves on its own address only
        set(&mut env, "KPATROL_LISTEN_POD_IPS", "1".into());
    }
    let kpatrol_mounts = mounts
        .iter()
        .any(|m| m.trim_end_matches('/') == KPATROL_MOUNTS || m.starts_with(&format!("{KPATROL_MOUNTS}/")));
    if kpatrol_mounts && get(&env, "KPATROL_MOUNTS").is_none() {
        set(
            &mut env,
            "KPATROL_MOUNTS",
            under(root, KPATROL_MOUNTS).display().to_string(),
        );
    }
    let cwd = match c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => {
            let d = under(root, w);
            std::fs::create_dir_all(&d)?;
            d
        }
        None => folder.to_path_buf(),
    };
    Ok(Launch {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        program,
        args,
        env,
        cwd,
        log: folder.join(format!("{}.log", c.name)),
        term_log,
        fallback_to_logs: c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        sidecar: false,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{expand, quantity, rewrite};

    #[test]
    fn expands_as_kubernetes() {
        let look = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$-$", &look), "x-$(B)-$(A)-$-$");
        assert_eq!(expand("a$(A", &look), "a$(A");
    }

    #[test]
    fn rewrites_paths_at_below_and_above_mounts() {
        let m = vec!["/etc/kpatrol/task".to_string()];
        let root = Path::new("/p/root");
        let t = ("/dev/termination-log", Path::new("/p/c.termination-log"));
        assert_eq!(
            rewrite("/etc/kpatrol/task/task.yaml", &m, root, t),
            "/p/root/etc/kpatrol/task/task.yaml"
        );
        assert_eq!(rewrite("/etc/kpatrol", &m, root, t), "/p/root/etc/kpatrol");
        assert_eq!(
            rewrite("--task=/etc/kpatrol/task/x", &m, root, t),
            "--task=/p/root/etc/kpatrol/task/x"
        );
        assert_eq!(rewrite("/etc/kpatrolx", &m, root, t), "/etc/kpatrolx");
        assert_eq!(rewrite("/", &m, root, t), "/");
        assert_eq!(rewrite("/dev/termination-log", &m, root, t), "/p/c.termination-log");
        assert_eq!(rewrite("http", &m, root, t), "http");
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("100m"), Some(0.1));
        assert_eq!(quantity("1Gi"), Some(1073741824.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
    }
}
