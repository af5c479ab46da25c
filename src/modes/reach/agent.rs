//! One agent of a mesh round: what it presses ([`Aim`]) and what it measured ([`Row`]), the
//! pressing itself ([`press`], shared by the local mesh and the agent in a pod), and the
//! agent in a pod (`kpatrol-probe reach`, [`run`]) with its control channel.
//!
//! In a cluster an agent has no API access: the launcher tells it what to press. The agent
//! serves kpatrol's HTTP target on its port (every path answers), and three control paths:
//!
//! - `POST /kpatrol/orders` ([`Orders`], JSON): the agent's index and every aim (target node,
//!   path, URL); the agent starts pressing at once;
//! - `GET /kpatrol/row`: `202` while it presses, then `200` with its [`Row`] (JSON): the
//!   launcher gathers the whole matrix this way, not through 4 KiB termination messages;
//! - `POST /kpatrol/done`: the launcher has every row, the agent may exit.
//!
//! Control requests carry the round's token (`x-kpatrol-token`) when the agent has one
//! (`KPATROL_MESH_TOKEN`): without it nobody else in the cluster can aim the agents. Every
//! wait is bounded: no orders by the round's timeout is an error (exit 2); after its row,
//! the agent stays up until `done` or the linger time (its peers may still press it);
//! SIGTERM ends the pressing early, and the row is still served, for at most
//! [`STOPPED_LINGER`].
//! The launcher's side is [`client`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::judge::matrix::{Cell, CellExpect, Matrix, MatrixVerdict, PathName, judge_matrix};
use crate::judge::successes;
use crate::modes::Mode;
use crate::modes::http::{Body, HttpPlan, HttpTarget, HttpVersion};
use crate::plan::{Plan, Tls};
use crate::pressure::Stop;
use crate::probe::{Mounts, ProbeError, SetupError};

/// The control paths.
pub const ORDERS: &str = "/kpatrol/orders";
pub const ROW: &str = "/kpatrol/row";
pub const DONE: &str = "/kpatrol/done";
/// The header that carries the round's token.
pub const TOKEN_HEADER: &str = "x-kpatrol-token";
/// The environment variable that gives an agent its round's token.
pub const TOKEN_ENV: &str = "KPATROL_MESH_TOKEN";
/// How long a stopped agent (SIGTERM) still serves its row, within Kubernetes' default grace
/// period of 30 s.
pub const STOPPED_LINGER: Duration = Duration::from_secs(20);
/// The largest orders an agent reads (1,000 nodes × 6 paths × 2 families is about 1.5 MB).
pub const MAX_ORDERS_BYTES: usize = 16 << 20;

/// One target of one agent: which cell it fills, and where it presses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aim {
    /// The target node's index.
    pub target: u32,
    /// The path's index in the round's path list.
    pub path: u16,
    pub url: String,
    /// The `Host` to send (an Ingress's host), when not the URL's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What the launcher tells an agent: its index, its aims, and the round's node and path
/// names (so the agent's own verdict names them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orders {
    pub source: u32,
    pub nodes: Vec<String>,
    pub paths: Vec<PathName>,
    pub aims: Vec<Aim>,
}

/// What an agent measured: its row of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub source: u32,
    /// The round was stopped (SIGTERM) before its end.
    pub stopped: bool,
    pub cells: Vec<Cell>,
}

/// Presses every aim at `plan`'s rate for its duration with the HTTP mode's attempt (any
/// answer is the path working, as kdoctor counts); each aim's statistics become a cell.
pub async fn press(plan: &Plan, source: u32, aims: &[Aim], mounts: &Mounts, stop: Stop) -> Result<Row, ProbeError> {
    let mut expect = plan.expect.clone();
    expect.codes.clear();
    let mut cell_of: HashMap<String, (u32, u16)> = HashMap::new();
    let mut targets = Vec::new();
    for a in aims {
        let name = format!("{} {}", a.target, a.path);
        cell_of.insert(name.clone(), (a.target, a.path));
        targets.push(HttpTarget {
            name,
            url: a.url.clone(),
            method: "GET".into(),
            headers: a
                .host
                .iter()
                .map(|h| crate::modes::http::plan::Header {
                    name: "Host".into(),
                    value: crate::modes::http::plan::HeaderValue::Inline(h.clone()),
                })
                .collect(),
            body: Body::None,
            tls: Tls::default(),
            version: HttpVersion::Http1,
            redirects: 0,
            expect: expect.clone(),
        });
    }
    let mut p = plan.clone();
    p.mode = Mode::Http(HttpPlan { targets });
    let f = crate::round::execute_round(&p, mounts, stop, None).await?;
    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    let cells = f
        .round
        .targets
        .iter()
        .filter_map(|t| {
            let (target, path) = cell_of.get(t.id.as_str()).copied()?;
            let s = &t.stats;
            let summary = s.summary();
            Some(Cell {
                source,
                target,
                path,
                sent: u32::try_from(s.sent).unwrap_or(u32::MAX),
                ok: u32::try_from(successes(&expect, s)).unwrap_or(u32::MAX),
                mean_us: us(summary.mean),
                p99_us: us(summary.p99),
            })
        })
        .collect();
    Ok(Row {
        source,
        stopped: f.round.stopped,
        cells,
    })
}

/// What the control channel shares with the agent's main task.
#[derive(Default)]
struct Shared {
    token: Option<String>,
    orders: Mutex<Option<Orders>>,
    ordered: Notify,
    /// The row as JSON, once measured.
    row: Mutex<Option<Bytes>>,
    done: Stop,
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn control(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if ![ORDERS, ROW, DONE].contains(&path.as_str()) {
        return crate::probe::serve::answer(req).await;
    }
    if let Some(token) = &shared.token {
        let given = req.headers().get(TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !same(given, token.as_bytes()) {
            return Ok(reply(StatusCode::FORBIDDEN, "the round's token is missing or wrong\n"));
        }
    }
    Ok(match (req.method().clone(), path.as_str()) {
        (Method::POST, ORDERS) => {
            let body = match Limited::new(req.into_body(), MAX_ORDERS_BYTES).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, format!("orders: {e}\n"))),
            };
            match serde_json::from_slice::<Orders>(&body) {
                Err(e) => reply(StatusCode::BAD_REQUEST, format!("orders: {e}\n")),
                Ok(o) => {
                    let Ok(mut slot) = shared.orders.lock() else {
                        return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, "orders: lock\n"));
                    };
                    if slot.as_ref().is_some_and(|had| *had != o) {
                        reply(StatusCode::CONFLICT, "orders: this round's orders were already given\n")
                    } else {
                        *slot = Some(o);
                        shared.ordered.notify_one();
                        reply(StatusCode::ACCEPTED, "")
                    }
                }
            }
        }
        (Method::GET, ROW) => match shared.row.lock().ok().and_then(|r| r.clone()) {
            Some(json) => {
                let mut r = reply(StatusCode::OK, json);
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                r
            }
            None => reply(StatusCode::ACCEPTED, "pressing\n"),
        },
        (Method::POST, DONE) => {
            shared.done.stop();
            reply(StatusCode::OK, "")
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, ""),
    })
}

/// Whether `a` and `b` are equal, in a time that does not tell how much of a guessed token
/// was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The port an agent serves on in a pod: its target, and the launcher's control paths.
pub const AGENT_PORT: u16 = 8080;

/// The pod's addresses (comma-separated), which render gives the agent through the
/// downward API (`status.podIPs`).
pub const POD_IPS_ENV: &str = "POD_IPS";

/// Set (to anything) where pods share one network (the test kubelet on loopback): the agent
/// serves only on its own addresses ([`POD_IPS_ENV`]), not on every address.
pub const POD_IPS_ONLY_ENV: &str = "KPATROL_LISTEN_POD_IPS";

/// Where an agent serves without `--listen`: on [`AGENT_PORT`] of every address (`[::]`,
/// IPv4 included; `0.0.0.0` where the pod has no IPv6), which in a pod of its own is each of
/// its interfaces, Multus's too; with `pod_ips_only`, of each of `pod_ips` alone (pods that
/// share one network). Pure.
pub fn listen_addrs(pod_ips: Option<&str>, pod_ips_only: bool) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = pod_ips
        .filter(|_| pod_ips_only)
        .unwrap_or_default()
        .split(',')
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, AGENT_PORT))
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), AGENT_PORT));
    }
    out
}

/// How an agent in a pod runs.
pub struct AgentOptions {
    /// Where it serves (one listener each).
    pub listen: Vec<SocketAddr>,
    pub token: Option<String>,
    /// How long to wait for orders.
    pub wait_orders: Duration,
    /// How long to stay up after the row, without `done`.
    pub linger: Duration,
}

/// Why an agent could not take part in the round.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no orders came within {}", crate::duration::format_duration(*.0))]
    NoOrders(Duration),
    #[error("stopped before any orders came")]
    Stopped,
    #[error(transparent)]
    Round(#[from] ProbeError),
}

/// An agent's part of a round: its row, judged on its own.
pub struct Pressed {
    pub row: Row,
    pub verdict: MatrixVerdict,
}

/// Judges one agent's row as a matrix of its own (the launcher judges the whole).
pub fn judge_row(plan: &Plan, orders: &Orders, row: &Row) -> MatrixVerdict {
    let m = Matrix {
        nodes: orders.nodes.clone(),
        paths: orders.paths.clone(),
        // only this agent's row is known: the others are not judged here
        reported: vec![true; orders.nodes.len()],
        cells: row.cells.clone(),
    };
    judge_matrix(&CellExpect::of(&plan.expect), &m)
}

/// Runs one agent of a mesh round in a pod: serves, waits for orders, presses, serves its
/// row until the launcher is done (or the linger time), returns the row judged. `stop`
/// (SIGTERM) ends the pressing early.
pub async fn run(plan: &Plan, mounts: &Mounts, opts: &AgentOptions, stop: Stop) -> Result<Pressed, AgentError> {
    let mut listeners = Vec::new();
    for addr in &opts.listen {
        let any4 = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
        let listener = crate::probe::serve::listen(*addr).or_else(|e| match addr.ip() {
            // a pod without IPv6 cannot open `[::]`: every IPv4 address then
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => crate::probe::serve::listen(any4),
            _ => Err(e),
        });
        listeners.push(listener.map_err(|source| AgentError::Listen { addr: *addr, source })?);
    }
    let shared = Arc::new(Shared {
        token: opts.token.clone(),
        ..Default::default()
    });
    let serving = Stop::new();
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(serve(l, shared.clone(), serving.clone())))
        .collect();
    let result = async {
        let orders = tokio::select! {
            _ = shared.ordered.notified() => shared.orders.lock().ok().and_then(|o| o.clone()),
            _ = tokio::time::sleep(opts.wait_orders) => None,
            _ = stop.stopped() => return Err(AgentError::Stopped),
        };
        let Some(orders) = orders else {
            return Err(AgentError::NoOrders(opts.wait_orders));
        };
        eprintln!(
            "kpatrol-probe reach: orders: agent {} of {}, {} aims",
            orders.source,
            orders.nodes.len(),
            orders.aims.len()
        );
        let row = press(plan, orders.source, &orders.aims, mounts, stop.clone()).await?;
        let json = serde_json::to_vec(&row).map_err(|e| {
            ProbeError::Setup {
                target: "mesh".into(),
                error: SetupError::Invalid(format!("the row did not serialise: {e}")),
            }
        })?;
        if let Ok(mut slot) = shared.row.lock() {
            *slot = Some(Bytes::from(json));
        }
        let verdict = judge_row(plan, &orders, &row);
        // stopped (SIGTERM), the pod is killed after its grace period: linger only briefly
        let linger = if row.stopped {
            opts.linger.min(STOPPED_LINGER)
        } else {
            opts.linger
        };
        tokio::select! {
            _ = shared.done.stopped() => {}
            _ = tokio::time::sleep(linger) => {}
        }
        Ok(Pressed { row, verdict })
    }
    .await;
    serving.stop();
    for s in servers {
        s.abort();
    }
    result
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: Stop) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    // out of file descriptors and the like: keep serving
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.stopped() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| control(shared.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The launcher's side of the control channel: every call bounded by the client's timeout.
pub mod client {
    use super::*;

    /// Why an agent could not be reached or answered wrongly.
    #[derive(Debug, thiserror::Error)]
    pub enum ControlError {
        #[error("{url}: {source}")]
        Http {
            url: String,
            #[source]
            source: reqwest::Error,
        },
        #[error("{url}: {status}: {body}")]
        Status { url: String, status: u16, body: String },
        #[error("the launcher's HTTP client: {0}")]
        Client(String),
    }

    /// A client for the control channel: plain HTTP to the agents' pod addresses, no proxy,
    /// every request bounded by `timeout`.
    pub fn new(timeout: Duration) -> Result<reqwest::Client, ControlError> {
        crate::probe::client::own_client(timeout).map_err(ControlError::Client)
    }

    fn http(url: &str) -> impl FnOnce(reqwest::Error) -> ControlError + '_ {
        move |source| ControlError::Http {
            url: url.to_string(),
            source,
        }
    }

    async fn call(
        client: &reqwest::Client,
        method: reqwest::Method,
        url: String,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ControlError> {
        let mut req = client.request(method, &url);
        if let Some(t) = token {
            req = req.header(TOKEN_HEADER, t);
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b);
        }
        let resp = req.send().await.map_err(http(&url))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(http(&url))?;
        if !(200..300).contains(&status) {
            return Err(ControlError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        Ok((status, bytes))
    }

    /// Gives the agent at `base` (`http://ip:port`) its orders.
    pub async fn send_orders(
        client: &reqwest::Client,
        base: &str,
        token: Option<&str>,
        orders: &Orders,
    ) -> Result<(), ControlError> {
        let body = serde_json::to_vec(orders).unwrap_or_default();
        call(client, reqwest::Method::POST, format!("{base}{ORDERS}"), token, Some(body)).await?;
        Ok(())
    }

    /// The agent's row, `None` while it presses.
    pub async fn fetch_row(client: &reqwest::Client, base: &str, token: Option<&str>) -> Result<Option<Row>, ControlError> {
        let url = format!("{base}{ROW}");
        let (status, body) = call(client, reqwest::Method::GET, url.clone(), token, None).await?;
        if status == 202 {
            return Ok(None);
        }
        serde_json::from_slice(&body).map(Some).map_err(|e| ControlError::Status {
            url,
            status,
            body: format!("not a row: {e}"),
        })
    }

    /// Tells the agent the launcher has its row.
    pub async fn finish(client: &reqwest::Client, base: &str, token: Option<&str>) -> Result<(), ControlError> {
        call(client, reqwest::Method::POST, format!("{base}{DONE}"), token, None).await?;
        Ok(())
    }

    /// One agent the launcher gathers from: its index and its control base URL.
    #[derive(Clone, Debug)]
    pub struct Reachable {
        pub source: u32,
        pub base: String,
    }

    /// What the launcher gathered: the rows that came, and the agents whose row did not
    /// come by the deadline (named, never dropped), each with the last error.
    #[derive(Debug, Default)]
    pub struct Gathered {
        pub rows: Vec<Row>,
        pub silent: Vec<(u32, String)>,
    }

    /// How often a pressing agent's row is asked for.
    pub const POLL: Duration = Duration::from_millis(200);

    /// Gathers every agent's row, at most `in_flight` agents at a time, each polled every
    /// [`POLL`] until its row comes or `until` passes; each agent whose row came is told it
    /// may exit. `stop` ends it with the rows in hand. Memory: the rows, decoded as they come.
    pub async fn gather(
        client: &reqwest::Client,
        agents: Vec<Reachable>,
        token: Option<&str>,
        until: tokio::time::Instant,
        in_flight: usize,
        stop: &Stop,
    ) -> Gathered {
        use futures::StreamExt as _;
        let one = |a: Reachable| async move {
            loop {
                let last = match fetch_row(client, &a.base, token).await {
                    Ok(Some(row)) => {
                        // the row is in hand: a lost `done` only costs the agent its linger time
                        let _ = finish(client, &a.base, token).await;
                        return Ok(row);
                    }
                    Ok(None) => "still pressing".to_string(),
                    Err(e) => e.to_string(),
                };
                if tokio::time::Instant::now() + POLL >= until {
                    return Err((a.source, last));
                }
                tokio::time::sleep(POLL).await;
            }
        };
        let mut out = Gathered::default();
        let mut results = futures::stream::iter(agents.into_iter().map(one)).buffer_unordered(in_flight.max(1));
        loop {
            let next = tokio::select! {
                r = results.next() => r,
                _ = stop.stopped() => break,
            };
            match next {
                Some(Ok(row)) => out.rows.push(row),
                Some(Err(silent)) => out.silent.push(silent),
                None => break,
            }
        }
        out.rows.sort_by_key(|r| r.source);
        out.silent.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_serves_on_every_address_or_where_pods_share_a_network_on_its_own() {
        let any = vec!["[::]:8080".parse::<SocketAddr>().unwrap()];
        assert_eq!(listen_addrs(Some("10.1.0.5,fd00::5"), false), any, "its own network: every address");
        assert_eq!(
            listen_addrs(Some("10.1.0.5,fd00::5"), true),
            vec![
                "10.1.0.5:8080".parse::<SocketAddr>().unwrap(),
                "[fd00::5]:8080".parse().unwrap()
            ]
        );
        for none in [None, Some(""), Some("not an address")] {
            assert_eq!(listen_addrs(none, true), any, "{none:?}");
        }
    }

}
