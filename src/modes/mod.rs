//! Modes: what a round does to its targets. A mode lives in one folder, `src/modes/<mode>/`:
//! its plan (`plan.rs`), its native kind's reader (`read.rs`), its attempt (`attempt.rs`),
//! and what rendering needs from it ([`RoundMode::mounts`]). It is known to validate, run,
//! render, the probe's command line and the kind lists in errors through one line: its
//! entry in the [`modes!`] list at the end of this file. A native kind registers what its
//! codes are, its own expectation fields and its targets' reader ([`NativeKind`]); the rest
//! of its spec is the skeleton `plan::native` plans. Shared vocabularies stay outside:
//! answer-code names (`plan::CodeKind`) and error kinds (`pressure::ErrorKind`); a mode
//! that brings new ones adds them there.
//!
//! kdoctor's kinds are planned in `plan::kdoctor` (a compatibility layer) into these plans.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::diag::{Diagnostics, Pos};
use crate::plan::Plan;
use crate::plan::native::ExpectSpec;
use crate::plan::{CodeKind, CodeRange, Expect, FileRef, Pressure, Tls};
use crate::pressure::{self, ErrorKind, Live, Load, Stats, Stop};
use crate::probe::{Mounts, ProbeError};
use crate::results::TargetId;
use crate::task::read::Cx;
use crate::task::yaml::Node;

/// Reads and plans a native kind's `spec.targets` (at the field path given) over the round's
/// expectations, files resolved against the task's folder; every problem goes to `cx`.
pub(crate) type TargetsReader = fn(&mut Cx, &Node, &str, &ExpectSpec, &Path) -> Option<Mode>;

/// A native `kpatrol.dev/v1` kind: its name, what its answer codes are, and its targets'
/// reader (the rest of its spec is the skeleton every native kind shares).
#[derive(Clone, Copy)]
pub struct NativeKind {
    pub kind: &'static str,
    /// What `expect` codes mean (HTTP statuses, DNS rcodes).
    pub codes: CodeKind,
    /// The codes that count as success when a task lists none.
    pub default_codes: CodeRange,
    pub(crate) targets: TargetsReader,
    /// Reads the kind's own expectation fields (its codes and checks), at the round's level
    /// and each target's.
    pub(crate) expect: crate::plan::native::OwnExpect,
    /// Measures at the maximum rate with one attempt in flight (a disk's I/O): `qps` and
    /// `maxInFlight` are not the task's to set.
    pub one_at_a_time: bool,
}

/// What one mode provides. Implemented by the mode's plan.
pub(crate) trait RoundMode {
    /// The `kpatrol-probe` subcommand and the `kpatrol.mode` attribute.
    const NAME: &'static str;
    /// What `kpatrol-probe --help` says of it.
    const ABOUT: &'static str;
    /// Its native kind, when it has one.
    const NATIVE: Option<NativeKind>;
    /// Whether `kpatrol-probe` runs it as a round of its own (`kpatrol-probe <mode>`).
    const RUNS: bool = true;
    /// Whether `render` can build its pods: the probe's modes, and the mesh (whose agents
    /// run `kpatrol-probe reach` under a launcher).
    const RENDERS: bool = Self::RUNS;

    /// Each target's name and expectations, in task order.
    fn targets(&self) -> Vec<(&str, &Expect)>;

    /// Every target's attempt, built (files read, TLS set up): fails when a file is missing
    /// or TLS material is bad.
    fn prepare(
        &self,
        pressure: &Pressure,
        mounts: &Mounts,
    ) -> impl Future<Output = Result<Vec<Prepared>, ProbeError>> + Send;

    /// What its pods mount, and what a pod cannot reach (local files, loopback).
    fn mounts(&self, needs: &mut Needs<'_>);

    /// Gives target `from` the name `to`: the name preparing chose ([`Prepared::planned_as`]).
    fn rename_target(&mut self, _from: &str, _to: &str) {}
}

/// One target's attempt, ready to press.
pub struct Prepared {
    pub id: TargetId,
    pub attempt: Arc<dyn Press>,
    /// The target's name in the plan, when its results go by another: a name that holds
    /// what preparing found (kdoctor's `targetDns` names hold the Service's address).
    pub planned_as: Option<TargetId>,
}

impl Prepared {
    pub fn new<A: pressure::Attempt>(name: &str, attempt: Arc<A>) -> Self {
        Prepared {
            id: TargetId::new(name),
            attempt,
            planned_as: None,
        }
    }

    /// The same attempt, known in the plan as `name`.
    pub fn planned_as(mut self, name: &str) -> Self {
        if self.id != name {
            self.planned_as = Some(TargetId::new(name));
        }
        self
    }
}

/// What a target's attempt gives the round: the pressure engine driving it, on its own task.
pub trait Press: Send + Sync {
    fn press(self: Arc<Self>, load: Load, start: Instant, stop: Stop, live: Arc<Live>) -> JoinHandle<Pressed>;
}

/// A target's statistics and one example message per error kind.
pub type Pressed = (Stats, Vec<(ErrorKind, String)>);

impl<A: pressure::Attempt> Press for A {
    fn press(self: Arc<Self>, load: Load, start: Instant, stop: Stop, live: Arc<Live>) -> JoinHandle<Pressed> {
        tokio::spawn(async move {
            let (stats, mut samples) = match lane_attempts(&self, &load) {
                Some(attempts) => pressure::press_lanes(&load, attempts, start, stop, live).await,
                None => {
                    let stats = pressure::press(&load, self.clone(), start, stop, live).await;
                    (stats, self.error_samples())
                }
            };
            if stats.error(ErrorKind::Timeout) > 0 && !samples.iter().any(|(k, _)| *k == ErrorKind::Timeout) {
                let t = crate::duration::format_duration(load.timeout);
                samples.push((ErrorKind::Timeout, format!("no answer within the timeout of {t}")));
            }
            (stats, samples)
        })
    }
}

/// The attempts of a target's lanes, `attempt` first, when it is pressed at the maximum
/// rate, its mode has lanes and the runtime more than one thread; else `None`.
fn lane_attempts<A: pressure::Attempt>(attempt: &Arc<A>, load: &Load) -> Option<Vec<Arc<A>>> {
    let n = pressure::lanes().min(load.max_in_flight as usize);
    if load.rate != crate::plan::Rate::Max || n < 2 {
        return None;
    }
    let mut all = vec![attempt.clone()];
    for _ in 1..n {
        all.push(Arc::new(attempt.lane()?));
    }
    Some(all)
}

/// What a task's pods need from the cluster, collected from its mode for `render`: the
/// Secrets and ConfigMaps to mount, and problems with what a pod cannot reach.
pub struct Needs<'a> {
    pub plan: &'a Plan,
    pub diagnostics: &'a mut Diagnostics,
    pub secrets: Vec<String>,
    pub config_maps: Vec<String>,
    /// Volumes mounted read-write at a path (DiskCheck's folders).
    pub volumes: Vec<(String, disk::DiskVolume)>,
    warned: std::collections::BTreeSet<String>,
}

impl<'a> Needs<'a> {
    pub fn new(plan: &'a Plan, diagnostics: &'a mut Diagnostics) -> Self {
        Needs {
            plan,
            diagnostics,
            secrets: Vec::new(),
            config_maps: Vec::new(),
            volumes: Vec::new(),
            warned: Default::default(),
        }
    }

    /// A local file named by the task: a pod cannot read it; `instead` says what to use.
    pub fn local_file(&mut self, f: &FileRef, what: &str, instead: &str) {
        self.diagnostics
            .error(
                f.pos,
                &f.field,
                format!("{what} names a local file, which a pod cannot read"),
            )
            .allowed(instead);
    }

    /// TLS material: a Secret to mount, or local files a pod cannot read.
    pub fn tls(&mut self, t: &Tls) {
        for f in [&t.ca, &t.cert, &t.key].into_iter().flatten() {
            self.local_file(
                f,
                "TLS",
                "tls: {secret: NAME} (keys ca.crt, tls.crt, tls.key) in a cluster",
            );
        }
        if let Some(s) = &t.secret {
            self.secrets.push(s.clone());
        }
    }

    /// A target host: loopback in a pod reaches the pod itself (warned once per host).
    pub fn host(&mut self, host: &str) {
        let h = host.trim_matches(['[', ']']);
        if (h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
            && self.warned.insert(h.to_string())
        {
            let field = match self.plan.format {
                crate::task::Format::Kdoctor => "spec.target",
                crate::task::Format::Native => "spec.targets",
            };
            self.warn(
                field,
                format!("target {host} is loopback: in a pod it reaches the pod itself"),
            );
        }
    }

    /// A warning at `field` of the task.
    pub fn warn(&mut self, field: &str, message: String) {
        let pos: Pos = self.plan.origin.pos(field);
        self.diagnostics.warn(pos, field, message);
    }
}

/// A registered mode's facts, for command lines and messages.
#[derive(Clone, Copy)]
pub struct ModeInfo {
    pub name: &'static str,
    pub about: &'static str,
    pub native: Option<NativeKind>,
    pub runs: bool,
    pub renders: bool,
}

impl ModeInfo {
    const fn of<M: RoundMode>() -> ModeInfo {
        ModeInfo {
            name: M::NAME,
            about: M::ABOUT,
            native: M::NATIVE,
            runs: M::RUNS,
            renders: M::RENDERS,
        }
    }
}

/// The native kinds, in registration order.
pub fn native_kinds() -> impl Iterator<Item = NativeKind> {
    MODES.iter().filter_map(|m| m.native)
}

/// The modes `render` builds pods for.
pub fn rendered_modes() -> impl Iterator<Item = &'static ModeInfo> {
    MODES.iter().filter(|m| m.renders)
}

/// The modes `kpatrol-probe` runs.
pub fn probe_modes() -> impl Iterator<Item = &'static ModeInfo> {
    MODES.iter().filter(|m| m.runs)
}

/// Generates, from one list: the mode modules, [`Mode`] (a plan's mode, one variant per
/// registered mode) with its dispatch, and [`MODES`].
macro_rules! modes {
    ($($module:ident :: $variant:ident($plan:ident)),* $(,)?) => {
        $(pub mod $module;)*

        /// What a round does, per mode.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum Mode {
            $($variant($module::$plan)),*
        }

        /// Every registered mode, in registration order.
        pub const MODES: &[ModeInfo] = &[$(ModeInfo::of::<$module::$plan>()),*];

        impl Mode {
            /// The `kpatrol-probe` mode name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Mode::$variant(_) => <$module::$plan as RoundMode>::NAME),*
                }
            }

            /// Whether this version renders it.
            pub fn renders(&self) -> bool {
                match self {
                    $(Mode::$variant(_) => <$module::$plan as RoundMode>::RENDERS),*
                }
            }

            /// Each target's name and expectations, in task order.
            pub fn targets(&self) -> Vec<(&str, &Expect)> {
                match self {
                    $(Mode::$variant(m) => m.targets()),*
                }
            }

            /// Every target's attempt, built.
            pub async fn prepare(&self, pressure: &Pressure, mounts: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
                match self {
                    $(Mode::$variant(m) => m.prepare(pressure, mounts).await),*
                }
            }

            /// Gives target `from` the name `to` (see [`Prepared::planned_as`]).
            pub fn rename_target(&mut self, from: &str, to: &str) {
                match self {
                    $(Mode::$variant(m) => m.rename_target(from, to)),*
                }
            }

            /// What its pods mount; problems go to `needs`.
            pub fn mounts(&self, needs: &mut Needs<'_>) {
                match self {
                    $(Mode::$variant(m) => m.mounts(needs)),*
                }
            }
        }
    };
}

// The registration: one line per mode (its folder, its variant of `Mode`, its plan type).
modes! {
    http::Http(HttpPlan),
    dns::Dns(DnsPlan),
    reach::Reach(ReachPlan),
    tcp::Tcp(TcpPlan),
    disk::Disk(DiskPlan),
    sql::Sql(SqlPlan),
}
