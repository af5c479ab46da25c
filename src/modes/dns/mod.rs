//! The DNS mode: native `DnsCheck` (kdoctor's `Netdns` is read into the same plan in
//! `plan::kdoctor`), over UDP, TCP, DNS over TLS and DNS over HTTPS. Answer codes are
//! rcodes, plus [`WRONG_ANSWER`] for a NOERROR answer without what the target expects.

pub mod attempt;
pub mod plan;
pub(crate) mod read;

use std::sync::Arc;

pub use plan::*;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{CodeKind, CodeRange, Expect, Pressure};
use crate::probe::{Mounts, ProbeError};

impl RoundMode for DnsPlan {
    const NAME: &'static str = "dns";
    const ABOUT: &'static str = "DNS checks over UDP, TCP, TLS and HTTPS (DnsCheck, kdoctor Netdns).";
    const NATIVE: Option<NativeKind> = Some(NativeKind {
        kind: "DnsCheck",
        codes: CodeKind::Dns,
        // success by default: NOERROR
        default_codes: CodeRange { from: 0, to: 0 },
        targets: read::dns_targets,
        expect: read::dns_expect,
        one_at_a_time: false,
    });

    fn targets(&self) -> Vec<(&str, &Expect)> {
        self.targets.iter().map(|t| (t.name.as_str(), &t.expect)).collect()
    }

    async fn prepare(&self, p: &Pressure, mounts: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        let mut out = Vec::new();
        for t in &self.targets {
            let a = attempt::DnsAttempt::build(t, p, mounts)
                .await
                .map_err(|e| e.of(&t.name))?;
            let prepared = match &t.named_after_server {
                Some((prefix, suffix)) => {
                    let name = format!("{prefix}{}{suffix}", a.server());
                    Prepared::new(&name, Arc::new(a)).planned_as(&t.name)
                }
                None => Prepared::new(&t.name, Arc::new(a)),
            };
            out.push(prepared);
        }
        Ok(out)
    }

    fn rename_target(&mut self, from: &str, to: &str) {
        for t in self.targets.iter_mut().filter(|t| t.name == from) {
            t.name = to.to_string();
        }
    }

    fn mounts(&self, needs: &mut Needs<'_>) {
        for t in &self.targets {
            if let DnsServer::Address(a) = &t.server {
                needs.host(&a.ip().to_string());
            }
            needs.tls(&t.tls);
        }
    }
}
