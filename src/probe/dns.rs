//! The DNS mode: queries built once with hickory-proto and sent over UDP (a small pool of
//! sockets, replies matched to queries by ID), TCP and DNS over TLS (one connection per
//! target with pipelined queries, or a fresh connection per query on request) and DNS over
//! HTTPS (RFC 8484 POST). A reply's code is the answer; truncated replies, resets, refusals
//! and TLS failures are error kinds; a NOERROR reply that misses the expected records is
//! recorded as [`WRONG_ANSWER`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

use super::{Mounts, io_kind};
use crate::plan::{AnswerCheck, Connections, DnsProtocol, DnsServer, DnsTarget, Pressure, WRONG_ANSWER};
use crate::pressure::{Attempt, ErrorKind, Outcome};

const UDP_SOCKETS: usize = 4;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct DnsAttempt {
    samples: crate::pressure::ErrorSamples,
    server: String,
    transport: Transport,
    queries: Vec<Vec<u8>>,
    next: AtomicUsize,
    check: AnswerCheck,
}

enum Transport {
    Udp(UdpPool),
    Stream(StreamMux),
    Fresh(Connector),
    Https { client: reqwest::Client, url: reqwest::Url },
}

/// Where the server is and how to reach it.
pub async fn resolve_server(server: &DnsServer, protocol: DnsProtocol) -> Result<Option<SocketAddr>, String> {
    let port = if protocol == DnsProtocol::Tls { 853 } else { 53 };
    match server {
        DnsServer::Address(a) => Ok(Some(*a)),
        DnsServer::Url(_) => Ok(None),
        DnsServer::ClusterService {
            name: Some(name),
            namespace,
            ipv4,
            ipv6,
        } => {
            let host = format!("{name}.{namespace}.svc");
            let addrs = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| format!("looking up Service {host} timed out"))?
                .map_err(|e| format!("cannot resolve Service {host} through this host's resolver ({e}); outside a cluster use a server address"))?;
            let want = |ip: &IpAddr| (*ipv4 && ip.is_ipv4()) || (*ipv6 && ip.is_ipv6());
            addrs
                .into_iter()
                .find(|a| want(&a.ip()))
                .map(Some)
                .ok_or_else(|| format!("Service {host} has no {} address", if *ipv6 { "IPv6" } else { "IPv4" }))
        }
        DnsServer::ClusterService { name: None, ipv6, .. } => {
            let text = std::fs::read_to_string("/etc/resolv.conf")
                .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .find(|ip| ip.is_ipv6() == *ipv6)
                .map(|ip| Some(SocketAddr::new(ip, port)))
                .ok_or_else(|| "no cluster DNS server of that family in /etc/resolv.conf".to_string())
        }
    }
}

/// Wire-format queries (ID 0, patched per attempt).
fn templates(t: &DnsTarget, server: Option<SocketAddr>) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for q in &t.queries {
        let rtype = match &q.record_type {
            Some(r) => RecordType::from_str(r).map_err(|e| format!("record type {r}: {e}"))?,
            None if server.is_some_and(|s| s.is_ipv6()) => RecordType::AAAA,
            None => RecordType::A,
        };
        let fqdn = if q.name.ends_with('.') {
            q.name.clone()
        } else {
            format!("{}.", q.name)
        };
        let name = Name::from_ascii(&fqdn).map_err(|e| format!("name {}: {e}", q.name))?;
        let mut m = Message::query();
        m.metadata.id = 0;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name, rtype));
        if t.edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        out.push(m.to_vec().map_err(|e| format!("query {}: {e}", q.name))?);
    }
    if out.is_empty() {
        return Err("no queries".into());
    }
    Ok(out)
}

impl DnsAttempt {
    pub async fn build(t: &DnsTarget, p: &Pressure, mounts: &Mounts) -> Result<Self, String> {
        let server = resolve_server(&t.server, t.protocol).await?;
        let queries = templates(t, server)?;
        let tls = || -> Result<Arc<rustls::ClientConfig>, String> {
            Ok(Arc::new(super::http::client_tls(
                &t.tls,
                vec![b"dot".to_vec()],
                mounts,
            )?))
        };
        let transport = match (t.protocol, server) {
            (DnsProtocol::Https, _) => {
                let DnsServer::Url(u) = &t.server else {
                    return Err("DNS over HTTPS needs a URL".into());
                };
                let url = reqwest::Url::parse(u).map_err(|e| format!("url {u}: {e}"))?;
                let cfg = super::http::client_tls(&t.tls, vec![b"h2".to_vec(), b"http/1.1".to_vec()], mounts)?;
                let mut b = reqwest::Client::builder()
                    .no_proxy()
                    .tls_backend_preconfigured(cfg)
                    .connect_timeout(p.timeout);
                if p.connections == Connections::Fresh {
                    b = b.pool_max_idle_per_host(0);
                }
                Transport::Https {
                    client: b.build().map_err(|e| format!("HTTP client: {e}"))?,
                    url,
                }
            }
            (_, None) => return Err("no server address".into()),
            (DnsProtocol::Udp, Some(addr)) => {
                Transport::Udp(UdpPool::new(addr, UDP_SOCKETS.min(p.max_in_flight as usize).max(1))?)
            }
            (proto, Some(addr)) => {
                let tls = if proto == DnsProtocol::Tls {
                    let name = match &t.tls.server_name {
                        Some(n) => ServerName::try_from(n.clone()).map_err(|e| format!("tls.serverName {n}: {e}"))?,
                        None => ServerName::IpAddress(addr.ip().into()),
                    };
                    Some((tls()?, name))
                } else {
                    None
                };
                let c = Connector {
                    addr,
                    tls,
                    timeout: p.timeout,
                };
                match p.connections {
                    Connections::Reuse => Transport::Stream(StreamMux {
                        connector: c,
                        conn: tokio::sync::Mutex::new(None),
                    }),
                    Connections::Fresh => Transport::Fresh(c),
                }
            }
        };
        let server_text = match (server, &t.server) {
            (Some(a), _) => a.to_string(),
            (None, DnsServer::Url(u)) => u.clone(),
            (None, _) => "the server".into(),
        };
        Ok(DnsAttempt {
            samples: Default::default(),
            server: server_text,
            transport,
            queries,
            next: AtomicUsize::new(0),
            check: t.answers.clone(),
        })
    }

    fn judge(&self, reply: &[u8]) -> Outcome {
        if reply.len() < 12 {
            return Outcome::Failed(ErrorKind::Protocol);
        }
        if reply[2] & 0x02 != 0 {
            return Outcome::Failed(ErrorKind::Truncated);
        }
        let rcode = (reply[3] & 0x0f) as u16;
        if rcode == 0 && self.check.is_active() {
            return match Message::from_vec(reply) {
                Ok(m) if answers_match(&m, &self.check) => Outcome::Answered(0),
                Ok(_) => Outcome::Answered(WRONG_ANSWER),
                Err(_) => Outcome::Failed(ErrorKind::Protocol),
            };
        }
        Outcome::Answered(rcode)
    }
}

fn normal(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the answer section holds every expected value and enough records.
pub fn answers_match(m: &Message, check: &AnswerCheck) -> bool {
    if m.answers.len() < check.min as usize {
        return false;
    }
    let texts: Vec<String> = m.answers.iter().map(|r| normal(&r.data.to_string())).collect();
    check.contain.iter().all(|want| {
        let w = normal(want);
        let ip = w.parse::<IpAddr>().ok();
        texts
            .iter()
            .any(|t| *t == w || t.ends_with(&format!(" {w}")) || (ip.is_some() && t.parse::<IpAddr>().ok() == ip))
    })
}

impl Attempt for DnsAttempt {
    async fn attempt(&self) -> Outcome {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.queries.len();
        let query = &self.queries[i];
        let reply = match &self.transport {
            Transport::Udp(pool) => pool.exchange(query).await,
            Transport::Stream(mux) => mux.exchange(query).await,
            Transport::Fresh(c) => fresh_exchange(c, query).await,
            Transport::Https { client, url } => doh(client, url, query).await,
        };
        let outcome = match reply {
            Ok(r) => self.judge(&r),
            Err(k) => Outcome::Failed(k),
        };
        if let Outcome::Failed(k) = outcome {
            self.samples.note(k, || {
                let what = match k {
                    ErrorKind::Refused => "refused (connection refused or ICMP port unreachable)",
                    ErrorKind::Reset => "connection closed before the reply",
                    ErrorKind::Tls => "TLS handshake failed (certificate not trusted, wrong name, or not TLS)",
                    ErrorKind::Truncated => "reply truncated (TC bit): it does not fit in UDP; use tcp or edns",
                    ErrorKind::Protocol => "malformed reply, or an HTTP error status from the DoH server",
                    ErrorKind::Dns => "the DoH server's name does not resolve",
                    ErrorKind::Timeout => "no reply within the timeout",
                    ErrorKind::Other => "network error",
                };
                format!("{}: {what}", self.server)
            });
        }
        outcome
    }

    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        self.samples.all()
    }
}

type Reply = Result<Vec<u8>, ErrorKind>;

/// Queries waiting for their reply, by ID.
#[derive(Default)]
struct Pending {
    waiting: Mutex<HashMap<u16, oneshot::Sender<Reply>>>,
    next_id: AtomicU16,
}

/// Removes a query's entry when its attempt ends (answered, timed out or cancelled).
struct Registration<'a> {
    pending: &'a Pending,
    id: u16,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.pending.waiting.lock().expect("pending lock").remove(&self.id);
    }
}

impl Pending {
    fn register(&self) -> Result<(Registration<'_>, oneshot::Receiver<Reply>), ErrorKind> {
        let (tx, rx) = oneshot::channel();
        let mut w = self.waiting.lock().expect("pending lock");
        if w.len() >= 60_000 {
            return Err(ErrorKind::Other);
        }
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if let std::collections::hash_map::Entry::Vacant(e) = w.entry(id) {
                e.insert(tx);
                return Ok((Registration { pending: self, id }, rx));
            }
        }
    }

    fn deliver(&self, reply: &[u8]) {
        if reply.len() < 2 {
            return;
        }
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        if let Some(tx) = self.waiting.lock().expect("pending lock").remove(&id) {
            let _ = tx.send(Ok(reply.to_vec()));
        }
    }

    fn fail_all(&self, kind: ErrorKind) {
        for (_, tx) in self.waiting.lock().expect("pending lock").drain() {
            let _ = tx.send(Err(kind));
        }
    }
}

fn with_id(query: &[u8], id: u16) -> Vec<u8> {
    let mut q = query.to_vec();
    q[..2].copy_from_slice(&id.to_be_bytes());
    q
}

async fn wait(rx: oneshot::Receiver<Reply>) -> Reply {
    rx.await.unwrap_or(Err(ErrorKind::Reset))
}

struct UdpSock {
    socket: Arc<UdpSocket>,
    pending: Arc<Pending>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for UdpSock {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct UdpPool {
    socks: Vec<UdpSock>,
    next: AtomicUsize,
}

impl UdpPool {
    fn new(server: SocketAddr, n: usize) -> Result<Self, String> {
        let mut socks = Vec::new();
        for _ in 0..n {
            let local: SocketAddr = if server.is_ipv4() {
                "0.0.0.0:0".parse().expect("addr")
            } else {
                "[::]:0".parse().expect("addr")
            };
            let std_sock = std::net::UdpSocket::bind(local).map_err(|e| format!("UDP socket: {e}"))?;
            std_sock
                .connect(server)
                .map_err(|e| format!("UDP socket to {server}: {e}"))?;
            std_sock.set_nonblocking(true).map_err(|e| format!("UDP socket: {e}"))?;
            let socket = Arc::new(UdpSocket::from_std(std_sock).map_err(|e| format!("UDP socket: {e}"))?);
            let pending = Arc::new(Pending::default());
            let (s2, p2) = (socket.clone(), pending.clone());
            let reader = tokio::spawn(async move {
                let mut buf = vec![0u8; 65_535];
                loop {
                    match s2.recv(&mut buf).await {
                        Ok(n) => p2.deliver(&buf[..n]),
                        // ICMP port unreachable for this socket: every query on it was refused
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => p2.fail_all(ErrorKind::Refused),
                        Err(_) => p2.fail_all(ErrorKind::Other),
                    }
                }
            });
            socks.push(UdpSock {
                socket,
                pending,
                reader,
            });
        }
        Ok(UdpPool {
            socks,
            next: AtomicUsize::new(0),
        })
    }

    async fn exchange(&self, query: &[u8]) -> Reply {
        let s = &self.socks[self.next.fetch_add(1, Ordering::Relaxed) % self.socks.len()];
        let (reg, rx) = s.pending.register()?;
        if let Err(e) = s.socket.send(&with_id(query, reg.id)).await {
            return Err(io_kind(&e));
        }
        wait(rx).await
    }
}

#[derive(Clone)]
struct Connector {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
}

impl Connector {
    async fn connect(&self) -> Result<Box<dyn Io>, ErrorKind> {
        let tcp = match tokio::time::timeout(self.timeout, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(io_kind(&e)),
            Err(_) => return Err(ErrorKind::Timeout),
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((cfg, name)) => {
                let c = tokio_rustls::TlsConnector::from(cfg.clone());
                match c.connect(name.clone(), tcp).await {
                    Ok(s) => Ok(Box::new(s)),
                    Err(e) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => Err(ErrorKind::Tls),
                    Err(e) => match io_kind(&e) {
                        ErrorKind::Other => Err(ErrorKind::Tls),
                        k => Err(k),
                    },
                }
            }
        }
    }
}

fn frame(query: &[u8], id: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(query.len() + 2);
    f.extend_from_slice(&(query.len() as u16).to_be_bytes());
    f.extend_from_slice(&with_id(query, id));
    f
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let len = r.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// One connection, a query per attempt, closed after the reply.
async fn fresh_exchange(c: &Connector, query: &[u8]) -> Reply {
    let mut s = c.connect().await?;
    s.write_all(&frame(query, 1)).await.map_err(|e| io_kind(&e))?;
    let reply = read_frame(&mut s).await.map_err(|e| io_kind(&e))?;
    let _ = s.shutdown().await;
    Ok(reply)
}

/// One shared connection per target; queries are pipelined and replies matched by ID.
struct StreamMux {
    connector: Connector,
    conn: tokio::sync::Mutex<Option<Arc<MuxConn>>>,
}

struct MuxConn {
    writer: tokio::sync::Mutex<WriteHalf<Box<dyn Io>>>,
    pending: Arc<Pending>,
    dead: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for MuxConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl StreamMux {
    async fn conn(&self) -> Result<Arc<MuxConn>, ErrorKind> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.dead.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        let stream = self.connector.connect().await?;
        let (read, write): (ReadHalf<Box<dyn Io>>, WriteHalf<Box<dyn Io>>) = tokio::io::split(stream);
        let pending = Arc::new(Pending::default());
        let dead = Arc::new(AtomicBool::new(false));
        let (p2, d2) = (pending.clone(), dead.clone());
        let reader = tokio::spawn(async move {
            let mut read = read;
            loop {
                match read_frame(&mut read).await {
                    Ok(reply) => p2.deliver(&reply),
                    Err(e) => {
                        d2.store(true, Ordering::Release);
                        p2.fail_all(io_kind(&e));
                        return;
                    }
                }
            }
        });
        let c = Arc::new(MuxConn {
            writer: tokio::sync::Mutex::new(write),
            pending,
            dead,
            reader,
        });
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn exchange(&self, query: &[u8]) -> Reply {
        let c = self.conn().await?;
        let (reg, rx) = c.pending.register()?;
        let sent = c.writer.lock().await.write_all(&frame(query, reg.id)).await;
        if let Err(e) = sent {
            c.dead.store(true, Ordering::Release);
            return Err(io_kind(&e));
        }
        wait(rx).await
    }
}

async fn doh(client: &reqwest::Client, url: &reqwest::Url, query: &[u8]) -> Reply {
    let resp = client
        .post(url.clone())
        .header("content-type", "application/dns-message")
        .header("accept", "application/dns-message")
        .body(query.to_vec())
        .send()
        .await
        .map_err(|e| super::http::classify(&e))?;
    if !resp.status().is_success() {
        return Err(ErrorKind::Protocol);
    }
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| super::http::classify(&e))
}
