//! Running a round: [`prepare`] has the plan's mode build every target's attempt
//! (`crate::modes`), and [`run_round`] presses every target at once. Also what the modes
//! share: the mounts root, I/O error kinds, TLS and reqwest helpers ([`client`]), and the
//! local test target ([`serve`]).
//!
//! Files a pod gets from Kubernetes (Secrets, ConfigMaps) are read from a mount root
//! (`/etc/kpatrol` in a pod): `<root>/secrets/<name>/<key>`, `<root>/configmaps/<name>/<key>`.

pub mod client;
pub mod serve;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::plan::Plan;
use crate::pressure::{self, Live, Load, Stop};
pub use crate::results::{RoundResult, TargetResult};

pub const DEFAULT_MOUNTS: &str = "/etc/kpatrol";

/// Why a round could not run (exit 2): never "the target failed", which is a verdict.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("target {target}: {error}")]
    Setup {
        target: String,
        #[source]
        error: SetupError,
    },
    #[error(
        "mode `{0}` cannot run yet in this version of kpatrol-probe; `kpatrol validate` and `kpatrol render` accept it"
    )]
    ModeNotAvailable(&'static str),
    #[error("the task has no targets")]
    NoTargets,
}

/// Why one target's attempt could not be built (files, TLS material, client settings).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file the target needs (body, TLS material, a Secret or ConfigMap key).
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Secret or ConfigMap name, or a key, that would leave the mounts root.
    #[error("{what} `{name}` cannot be read from the mounts: {problem}")]
    Mounts {
        what: &'static str,
        name: String,
        problem: String,
    },
    /// TLS material that is missing, incomplete or not PEM.
    #[error("{0}")]
    Tls(String),
    /// A setting the client refuses (URL, method, header, server name, record type).
    #[error("{0}")]
    Invalid(String),
    /// The server could not be found (a Service's address, resolv.conf).
    #[error("{0}")]
    Server(String),
    /// A socket could not be opened.
    #[error("{what}: {source}")]
    Socket {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl SetupError {
    /// The error of target `target`, for the round.
    pub fn of(self, target: &str) -> ProbeError {
        ProbeError::Setup {
            target: target.to_string(),
            error: self,
        }
    }
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
    pub fn secret_dir(&self, name: &str) -> Result<PathBuf, SetupError> {
        self.dir("secrets", "Secret", name)
    }

    /// `<root>/configmaps/<name>`, checked as [`Mounts::secret_dir`] is.
    pub fn configmap_dir(&self, name: &str) -> Result<PathBuf, SetupError> {
        self.dir("configmaps", "ConfigMap", name)
    }

    /// `<dir>/<key>` for a key of a Secret or ConfigMap, which cannot leave `dir`.
    pub fn key(dir: &Path, key: &str) -> Result<PathBuf, SetupError> {
        match crate::task::k8s::config_key_problem(key) {
            None => Ok(dir.join(key)),
            Some(problem) => Err(SetupError::Mounts {
                what: "key",
                name: key.to_string(),
                problem,
            }),
        }
    }

    fn dir(&self, folder: &str, what: &'static str, name: &str) -> Result<PathBuf, SetupError> {
        match crate::task::k8s::dns_subdomain_problem(name) {
            None => Ok(self.root.join(folder).join(name)),
            Some(problem) => Err(SetupError::Mounts {
                what,
                name: name.to_string(),
                problem,
            }),
        }
    }
}

/// A round ready to start: every target's attempt built (files read, TLS set up).
pub struct Prepared {
    load: Load,
    targets: Vec<crate::modes::Prepared>,
    /// Each target's statistics while it is pressed, in the order of `targets`.
    live: Vec<Arc<Live>>,
}

impl Prepared {
    /// Each target's statistics while the round runs, for progress displays.
    pub fn live(&self) -> &[Arc<Live>] {
        &self.live
    }

    /// The targets whose results go by another name than the plan's: (plan's, results').
    pub fn renamed(&self) -> impl Iterator<Item = (&crate::results::TargetId, &crate::results::TargetId)> {
        self.targets
            .iter()
            .filter_map(|t| Some((t.planned_as.as_ref()?, &t.id)))
    }
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
    let targets = plan.mode.prepare(p, mounts).await?;
    if targets.is_empty() {
        return Err(ProbeError::NoTargets);
    }
    let live = targets.iter().map(|_| Live::new(&load)).collect();
    Ok(Prepared { load, targets, live })
}

/// Presses every target at once for the round's duration; `stop` ends it early.
pub async fn run_round(prepared: &Prepared, stop: Stop) -> RoundResult {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let n = prepared.targets.len();
    let handles: Vec<_> = prepared
        .targets
        .iter()
        .zip(&prepared.live)
        .enumerate()
        .map(|(k, (target, live))| {
            let start = start + phase(&prepared.load, k, n);
            let handle = target
                .attempt
                .clone()
                .press(prepared.load.clone(), start, stop.clone(), live.clone());
            (target.id.clone(), handle)
        })
        .collect();
    let mut targets = Vec::new();
    for (id, h) in handles {
        let (stats, error_samples) = match h.await {
            Ok(s) => s,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        targets.push(TargetResult {
            id,
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

/// Makes dropping `stream` reset its connection (SO_LINGER 0) rather than close it
/// gracefully, for a side that closes first: a graceful close leaves it in TIME_WAIT for a
/// minute, and a few hundred connections per second to one destination would use up the
/// ephemeral ports. A zero linger never blocks; a socket that refuses it closes gracefully.
pub(crate) fn reset_on_drop(stream: &tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
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
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Read {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })
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
