//! The TCP mode: native `TcpCheck`. Each attempt opens its own connection to `host:port`
//! (a name is looked up on every attempt), optionally writes a payload and reads until the
//! reply can be judged against the expected prefix, then closes. Answer codes are
//! `connected` (connecting was the attempt) and `replied` (the reply came and started as
//! expected); a wrong reply, or a connection closed before it, is the `protocol` error.
//! No mounts, no API access.

pub mod attempt;
pub mod plan;
pub(crate) mod read;

use std::sync::Arc;

pub use plan::*;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{CodeKind, CodeRange, Expect, Pressure};
use crate::probe::{Mounts, ProbeError};

impl RoundMode for TcpPlan {
    const NAME: &'static str = "tcp";
    const ABOUT: &'static str = "TCP connect (and optional request/reply) checks (TcpCheck).";
    const NATIVE: Option<NativeKind> = Some(NativeKind {
        kind: "TcpCheck",
        codes: CodeKind::Tcp,
        // each target counts its own code (connected, or replied) as success
        default_codes: CodeRange {
            from: CONNECTED,
            to: REPLIED,
        },
        targets: read::tcp_targets,
        expect: read::tcp_expect,
        one_at_a_time: false,
    });

    fn targets(&self) -> Vec<(&str, &Expect)> {
        self.targets.iter().map(|t| (t.name.as_str(), &t.expect)).collect()
    }

    async fn prepare(&self, p: &Pressure, _: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        Ok(self
            .targets
            .iter()
            .map(|t| Prepared::new(&t.name, Arc::new(attempt::TcpAttempt::new(t, p.timeout))))
            .collect())
    }

    fn mounts(&self, needs: &mut Needs<'_>) {
        for t in &self.targets {
            needs.host(&t.host);
        }
    }
}
