//! Probes: one module per mode, each turning a plan's targets into [`Attempt`]s for the
//! pressure engine, and [`run_round`], which presses every target of a round at once.
//!
//! Files a pod gets from Kubernetes (Secrets, ConfigMaps) are read from a mount root
//! (`/etc/kpatrol` in a pod): `<root>/secrets/<name>/<key>`, `<root>/configmaps/<name>/<key>`.

pub mod dns;
pub mod h1;
pub mod http;
pub mod serve;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::plan::{Mode, Plan};
use crate::pressure::{self, Live, Load, Stats, Stop};
pub use crate::results::{RoundResult, TargetResult};

pub const DEFAULT_MOUNTS: &str = "/etc/kpatrol";

/// Why a round could not run (exit 2): never "the target failed", which is a verdict.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("target {target}: {message}")]
    Setup { target: String, message: String },
    #[error(
        "mode `{0}` cannot run yet in this version of kpatrol-probe; `kpatrol validate` and `kpatrol render` accept it"
    )]
    ModeNotAvailable(&'static str),
    #[error("the task has no targets")]
    NoTargets,
}

/// Where mounted Secrets and ConfigMaps live.
#[derive(Clone, Debug)]
pub struct Mounts {
    pub root: PathBuf,
}

impl Mounts {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Mounts { root: root.into() }
    }

    /// `<root>/secrets/<name>`. Names were checked when the task was read; they are checked
    /// again here, where they become paths, so nothing opens a path outside the root.
    pub fn secret_dir(&self, name: &str) -> Result<PathBuf, String> {
        self.dir("secrets", "Secret", name)
    }

    /// `<root>/configmaps/<name>`, checked as [`Mounts::secret_dir`] is.
    pub fn configmap_dir(&self, name: &str) -> Result<PathBuf, String> {
        self.dir("configmaps", "ConfigMap", name)
    }

    /// `<dir>/<key>` for a key of a Secret or ConfigMap, which cannot leave `dir`.
    pub fn key(dir: &Path, key: &str) -> Result<PathBuf, String> {
        match crate::task::k8s::config_key_problem(key) {
            None => Ok(dir.join(key)),
            Some(p) => Err(format!("key `{key}` cannot be read from the mounts: {p}")),
        }
    }

    fn dir(&self, folder: &str, what: &str, name: &str) -> Result<PathBuf, String> {
        match crate::task::k8s::dns_subdomain_problem(name) {
            None => Ok(self.root.join(folder).join(name)),
            Some(p) => Err(format!("{what} `{name}` cannot be read from the mounts: {p}")),
        }
    }
}

/// One target being pressed, visible to progress displays while the round runs.
pub struct LiveTarget {
    pub name: String,
    pub live: Arc<Live>,
}

/// A round ready to start: every target's attempt built (files read, TLS set up).
pub struct Prepared {
    load: Load,
    targets: Vec<(String, PreparedTarget)>,
    pub live: Vec<LiveTarget>,
}

enum PreparedTarget {
    Http(Arc<http::HttpAttempt>),
    H1(Arc<h1::H1Attempt>),
    Dns(Arc<dns::DnsAttempt>),
}

/// Builds every target's attempt. Fails (exit 2) when a file is missing or TLS material is bad.
pub async fn prepare(plan: &Plan, mounts: &Mounts) -> Result<Prepared, ProbeError> {
    let p = &plan.pressure;
    let load = Load {
        rate: p.rate,
        duration: p.duration,
        timeout: p.timeout,
        max_in_flight: p.max_in_flight,
    };
    let mut targets = Vec::new();
    match &plan.mode {
        Mode::Http(h) => {
            for t in &h.targets {
                let setup = |message| ProbeError::Setup {
                    target: t.name.clone(),
                    message,
                };
                let r = http::resolve(t, mounts).map_err(setup)?;
                let prepared = if h1::H1Attempt::fits(&r) {
                    let reuse = p.connections == crate::plan::Connections::Reuse;
                    PreparedTarget::H1(Arc::new(h1::H1Attempt::new(&r, reuse, p.timeout)))
                } else {
                    PreparedTarget::Http(Arc::new(http::HttpAttempt::build(t, r, p, mounts).map_err(setup)?))
                };
                targets.push((t.name.clone(), prepared));
            }
        }
        Mode::Dns(d) => {
            for t in &d.targets {
                let setup = |message| ProbeError::Setup {
                    target: t.name.clone(),
                    message,
                };
                let a = dns::DnsAttempt::build(t, p, mounts).await.map_err(setup)?;
                targets.push((t.name.clone(), PreparedTarget::Dns(Arc::new(a))));
            }
        }
        other => return Err(ProbeError::ModeNotAvailable(other.name())),
    }
    if targets.is_empty() {
        return Err(ProbeError::NoTargets);
    }
    let live = targets
        .iter()
        .map(|(n, _)| LiveTarget {
            name: n.clone(),
            live: Live::new(&load),
        })
        .collect();
    Ok(Prepared { load, targets, live })
}

/// Presses every target at once for the round's duration; `stop` ends it early.
pub async fn run_round(prepared: &Prepared, stop: Stop) -> RoundResult {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let mut handles = Vec::new();
    let n = prepared.targets.len();
    for (k, ((name, target), live)) in prepared.targets.iter().zip(&prepared.live).enumerate() {
        let (load, stop, live) = (prepared.load.clone(), stop.clone(), live.live.clone());
        let start = start + phase(&load, k, n);
        let name = name.clone();
        let handle = match target {
            PreparedTarget::Http(a) => tokio::spawn(press(load, a.clone(), start, stop, live)),
            PreparedTarget::H1(a) => tokio::spawn(press(load, a.clone(), start, stop, live)),
            PreparedTarget::Dns(a) => tokio::spawn(press(load, a.clone(), start, stop, live)),
        };
        handles.push((name, handle));
    }
    let mut targets = Vec::new();
    for (name, h) in handles {
        let (stats, error_samples) = match h.await {
            Ok(s) => s,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        targets.push(TargetResult {
            id: name.into(),
            planned: prepared.load.planned(),
            stats,
            error_samples,
        });
    }
    RoundResult {
        targets,
        started_at,
        elapsed: start.elapsed(),
        stopped: stop.is_stopped(),
    }
}

/// When target `k` of `n` starts, after the round's start: at a fixed rate the targets'
/// first slots are spread over one interval (1/qps), each target keeping its own rate.
/// Started in the same instant, hundreds of targets would open their connections at once
/// and measure kpatrol's own burst (and grow every histogram for it).
fn phase(load: &Load, k: usize, n: usize) -> Duration {
    match load.rate {
        crate::plan::Rate::Fixed(q) if n > 1 => Duration::from_secs_f64(k as f64 / n as f64 / q),
        _ => Duration::ZERO,
    }
}

async fn press<A: pressure::Attempt>(
    load: Load,
    attempt: Arc<A>,
    start: Instant,
    stop: Stop,
    live: Arc<Live>,
) -> (Stats, Vec<(pressure::ErrorKind, String)>) {
    let stats = pressure::press(&load, attempt.clone(), start, stop, live).await;
    let mut samples = attempt.error_samples();
    if stats.error(pressure::ErrorKind::Timeout) > 0 && !samples.iter().any(|(k, _)| *k == pressure::ErrorKind::Timeout)
    {
        let t = crate::task::read::format_duration(load.timeout);
        samples.push((
            pressure::ErrorKind::Timeout,
            format!("no answer within the timeout of {t}"),
        ));
    }
    (stats, samples)
}

/// The error kind of an I/O error, for every mode: a TLS failure inside it, a refusal, a
/// reset or early end, a timeout; anything else is `Other`.
pub(crate) fn io_kind(e: &std::io::Error) -> pressure::ErrorKind {
    use pressure::ErrorKind;
    use std::io::ErrorKind as K;
    if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
        return ErrorKind::Tls;
    }
    match e.kind() {
        K::ConnectionRefused => ErrorKind::Refused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => ErrorKind::Reset,
        K::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

/// Reads a file for a target, naming the file and what it was for on failure.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod mounts_tests {
    use super::Mounts;

    #[test]
    fn nothing_outside_the_mounts_root_is_opened() {
        let m = Mounts::new("/etc/kpatrol");
        assert_eq!(
            m.secret_dir("api-token").unwrap(),
            std::path::Path::new("/etc/kpatrol/secrets/api-token")
        );
        for name in ["../../../../etc", "/etc", "..", "a/b", ""] {
            assert!(m.secret_dir(name).is_err(), "{name:?}");
            assert!(m.configmap_dir(name).is_err(), "{name:?}");
        }
        let dir = m.secret_dir("s").unwrap();
        for key in ["/etc/hostname", "..", ".", "../x", "a/b", ""] {
            assert!(Mounts::key(&dir, key).is_err(), "{key:?}");
        }
        assert!(Mounts::key(&dir, "..data").is_ok());
    }
}
