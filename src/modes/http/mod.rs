//! The HTTP mode: native `HttpCheck` (kdoctor's `AppHttpHealthy` is read into the same
//! plan in `plan::kdoctor`). Plain HTTP/1.1 goes through a lean client ([`h1`]); TLS,
//! HTTP/2 and redirects through reqwest ([`attempt`]). Answer codes are HTTP statuses.

pub mod attempt;
pub mod h1;
pub mod plan;
pub(crate) mod read;

use std::sync::Arc;

pub use plan::*;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{CodeKind, CodeRange, Connections, Expect, Pressure};
use crate::probe::{Mounts, ProbeError};

impl RoundMode for HttpPlan {
    const NAME: &'static str = "http";
    const ABOUT: &'static str = "HTTP checks (HttpCheck, kdoctor AppHttpHealthy).";
    const NATIVE: Option<NativeKind> = Some(NativeKind {
        kind: "HttpCheck",
        codes: CodeKind::Http,
        // success by default: any 2xx or 3xx
        default_codes: CodeRange { from: 200, to: 399 },
        targets: read::http_targets,
        expect: read::http_expect,
        one_at_a_time: false,
    });

    fn targets(&self) -> Vec<(&str, &Expect)> {
        self.targets.iter().map(|t| (t.name.as_str(), &t.expect)).collect()
    }

    async fn prepare(&self, p: &Pressure, mounts: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        let mut out = Vec::new();
        for t in &self.targets {
            let setup = |e: crate::probe::SetupError| e.of(&t.name);
            let r = attempt::resolve(t, mounts).map_err(setup)?;
            out.push(if h1::H1Attempt::fits(&r) {
                let reuse = p.connections == Connections::Reuse;
                Prepared::new(&t.name, Arc::new(h1::H1Attempt::new(&r, reuse, p.timeout)))
            } else {
                Prepared::new(
                    &t.name,
                    Arc::new(attempt::HttpAttempt::build(t, r, p, mounts).map_err(setup)?),
                )
            });
        }
        Ok(out)
    }

    fn mounts(&self, needs: &mut Needs<'_>) {
        let namespace = needs.plan.namespace.clone();
        for t in &self.targets {
            if let Some(host) = reqwest::Url::parse(&t.url)
                .ok()
                .and_then(|u| u.host_str().map(String::from))
            {
                needs.host(&host);
            }
            needs.tls(&t.tls);
            for hdr in &t.headers {
                if let HeaderValue::Secret { name, .. } = &hdr.value {
                    needs.secrets.push(name.clone());
                }
            }
            match &t.body {
                Body::File(f) => needs.local_file(f, "body file", "bodyFrom: {configMap: NAME, key: KEY} in a cluster"),
                Body::ConfigMapKey { name, .. } => needs.config_maps.push(name.clone()),
                Body::ConfigMapJson { name, namespace: from } => {
                    if *from != namespace {
                        needs.warn(
                            "spec.target.bodyConfigmapNamespace",
                            format!(
                                "pods mount ConfigMaps of their own namespace: {name} is read from namespace {namespace}, not {from}"
                            ),
                        );
                    }
                    needs.config_maps.push(name.clone());
                }
                Body::None | Body::Inline(_) => {}
            }
        }
    }
}
