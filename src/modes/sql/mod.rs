//! The SQL mode: native `SqlCheck`, PostgreSQL (a lean client of ours, [`pg`]) and MySQL/MariaDB
//! (`mysql_async`). Each attempt runs the target's query (default `SELECT 1`) as one simple
//! query, on a pooled connection (`pressure.connections: reuse`, up to `maxInFlight`
//! connections opened as the load needs them) or on a connection of its own (`fresh`:
//! connect, log in, query, close). The user name and password are keys of a mounted
//! Secret, read once when the round is prepared and never shown. The answer code is
//! `queried`; errors are `auth` (credentials refused), `query` (the server answered the
//! query with an error), and the network's kinds (`refused`, `timeout`, `dns`, `tls`,
//! `reset` for a connection dropped under a query). Pods mount the credentials' Secret
//! (and the TLS Secret), no API access.

pub mod attempt;
pub mod pg;
pub mod plan;
pub(crate) mod read;

use std::sync::Arc;

pub use plan::*;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{CodeKind, CodeRange, Connections, Expect, Pressure};
use crate::probe::{Mounts, ProbeError};

impl RoundMode for SqlPlan {
    const NAME: &'static str = "sql";
    const ABOUT: &'static str = "PostgreSQL and MySQL/MariaDB connect and query checks (SqlCheck).";
    const NATIVE: Option<NativeKind> = Some(NativeKind {
        kind: "SqlCheck",
        codes: CodeKind::Sql,
        default_codes: CodeRange {
            from: QUERIED,
            to: QUERIED,
        },
        targets: read::sql_targets,
        expect: read::sql_expect,
        one_at_a_time: false,
    });

    fn targets(&self) -> Vec<(&str, &Expect)> {
        self.targets.iter().map(|t| (t.name.as_str(), &t.expect)).collect()
    }

    async fn prepare(&self, p: &Pressure, mounts: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        let pool = p.connections == Connections::Reuse;
        let mut out = Vec::new();
        for t in &self.targets {
            let a = attempt::SqlAttempt::build(t, pool, p, mounts).map_err(|e| e.of(&t.name))?;
            out.push(Prepared::new(&t.name, Arc::new(a)));
        }
        Ok(out)
    }

    fn mounts(&self, needs: &mut Needs<'_>) {
        for t in &self.targets {
            needs.host(&t.host);
            needs.secrets.push(t.credentials.secret.clone());
            if let Some(tls) = &t.tls {
                needs.tls(tls);
            }
        }
    }
}
