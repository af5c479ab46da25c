//! The DNS mode: queries built once with hickory-proto and sent over UDP (a small pool of
//! sockets, replies matched to queries by ID), TCP and DNS over TLS (one connection per
//! target with pipelined queries, or a fresh connection per query on request) and DNS over
//! HTTPS (RFC 8484 POST). A reply's code is the answer; truncated replies, resets, refusals
//! and TLS failures are error kinds; a NOERROR reply that misses the expected records is
//! recorded as [`WRONG_ANSWER`].
//!
//! A reply counts only when it answers the query ([`is_reply_to`]): the query's random ID,
//! the QR bit, the same opcode and the same question (name case-insensitively, type,
//! class). On a shared socket or connection (UDP, pipelined TCP/DoT) a reply that does not
//! is ignored, since the real answer may still come; if none does, the attempt is
//! `protocol` rather than `timeout` (an echo service, or a server answering something
//! else). On a connection or HTTP exchange that carries only this query, a mismatched
//! reply is `protocol` at once: nothing else can arrive there.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::plan::{AnswerCheck, DnsProtocol, DnsServer, DnsTarget, WRONG_ANSWER};
use crate::plan::{Connections, Pressure};
use crate::pressure::{Attempt, ErrorKind, Outcome};
use crate::probe::client::{classify, client_tls};
use crate::probe::{Mounts, SetupError, io_kind};

const UDP_SOCKETS: usize = 4;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct DnsAttempt {
    samples: crate::pressure::ErrorSamples,
    server: String,
    transport: Transport,
    queries: Vec<Arc<Template>>,
    next: AtomicUsize,
    check: AnswerCheck,
    timeout: Duration,
}

/// A query in wire format, ID 0 (patched per attempt), and where its question ends.
pub struct Template {
    wire: Vec<u8>,
    question_end: usize,
}

impl Template {
    /// `wire` must hold one question after the 12-byte header.
    fn new(wire: Vec<u8>) -> Option<Template> {
        let mut i = 12;
        loop {
            let len = *wire.get(i)? as usize;
            i += 1;
            if len == 0 {
                break;
            }
            if len >= 0xc0 {
                return None; // a compressed question name: never built here
            }
            i += len;
        }
        let question_end = i + 4;
        (question_end <= wire.len()).then_some(Template { wire, question_end })
    }
}

/// Whether `reply` answers `query` sent with `id`: a response (QR) with that ID and opcode,
/// echoing the question (the name case-insensitively, since resolvers may randomise case;
/// type and class exactly). An error reply may leave the question out. Pure.
pub fn is_reply_to(query: &Template, id: u16, reply: &[u8]) -> bool {
    let (Some(head), Some(qhead)) = (reply.first_chunk::<12>(), query.wire.first_chunk::<12>()) else {
        return false;
    };
    let opcode = |flags: u8| (flags >> 3) & 0x0f;
    if u16::from_be_bytes([head[0], head[1]]) != id || head[2] & 0x80 == 0 || opcode(head[2]) != opcode(qhead[2]) {
        return false;
    }
    let rcode = head[3] & 0x0f;
    match u16::from_be_bytes([head[4], head[5]]) {
        0 => rcode != 0,
        1 => {
            let (Some(want), Some(got)) = (
                query.wire.get(12..query.question_end),
                reply.get(12..query.question_end),
            ) else {
                return false;
            };
            // type and class: the last 4 bytes; the name's length bytes (< 64) are not letters
            let (Some((want_name, want_tc)), Some((got_name, got_tc))) =
                (want.split_last_chunk::<4>(), got.split_last_chunk::<4>())
            else {
                return false;
            };
            want_name.eq_ignore_ascii_case(got_name) && want_tc == got_tc
        }
        _ => false,
    }
}

/// A query ID an off-path spoofer cannot guess: from the system's CSPRNG, drawn 256 at a
/// time per thread so a busy round does not make a system call per query.
fn random_id() -> u16 {
    thread_local! {
        static IDS: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
    }
    IDS.with_borrow_mut(|ids| {
        if ids.is_empty() {
            let mut b = [0u8; 512];
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_ok() {
                ids.extend(b.as_chunks::<2>().0.iter().map(|&c| u16::from_be_bytes(c)));
            } else {
                // no CSPRNG: SipHash under std's randomly seeded keys is still unpredictable
                let h = std::collections::hash_map::RandomState::new().build_hasher().finish();
                let b = h.to_be_bytes();
                ids.extend(b.as_chunks::<2>().0.iter().map(|&c| u16::from_be_bytes(c)));
            }
        }
        ids.pop().unwrap_or_default()
    })
}

enum Transport {
    Udp(UdpPool),
    Stream(StreamMux),
    Fresh(Connector),
    Https { client: reqwest::Client, url: reqwest::Url },
}

/// Where the server is and how to reach it.
pub async fn resolve_server(server: &DnsServer) -> Result<Option<SocketAddr>, SetupError> {
    match server {
        DnsServer::Address(a) => Ok(Some(*a)),
        DnsServer::Url(_) => Ok(None),
        DnsServer::ClusterService {
            name: Some(name),
            namespace,
            ipv4,
            ipv6,
            port,
        } => {
            let port = *port;
            let host = format!("{name}.{namespace}.svc");
            let addrs = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| SetupError::Server(format!("looking up Service {host} timed out")))?
                .map_err(|e| SetupError::Server(format!("cannot resolve Service {host} through this host's resolver ({e}); outside a cluster use a server address")))?;
            let want = |ip: &IpAddr| (*ipv4 && ip.is_ipv4()) || (*ipv6 && ip.is_ipv6());
            addrs
                .into_iter()
                .find(|a| want(&a.ip()))
                .map(Some)
                .ok_or_else(|| SetupError::Server(format!("Service {host} has no {} address", if *ipv6 { "IPv6" } else { "IPv4" })))
        }
        DnsServer::ClusterService {
            name: None, ipv6, port, ..
        } => {
            let port = *port;
            let resolv_conf = std::path::Path::new("/etc/resolv.conf");
            let text = std::fs::read_to_string(resolv_conf).map_err(|source| SetupError::Read {
                what: "the resolver configuration".into(),
                path: resolv_conf.to_path_buf(),
                source,
            })?;
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .find(|ip| ip.is_ipv6() == *ipv6)
                .map(|ip| Some(SocketAddr::new(ip, port)))
                .ok_or_else(|| SetupError::Server("no cluster DNS server of that family in /etc/resolv.conf".into()))
        }
    }
}

/// Wire-format queries (ID 0, patched per attempt).
fn templates(t: &DnsTarget, server: Option<SocketAddr>) -> Result<Vec<Arc<Template>>, SetupError> {
    let mut out = Vec::new();
    for q in &t.queries {
        let rtype = match &q.record_type {
            Some(r) => RecordType::from_str(r).map_err(|e| SetupError::Invalid(format!("record type {r}: {e}")))?,
            None if server.is_some_and(|s| s.is_ipv6()) => RecordType::AAAA,
            None => RecordType::A,
        };
        let fqdn = if q.name.ends_with('.') {
            q.name.clone()
        } else {
            format!("{}.", q.name)
        };
        let name = Name::from_ascii(&fqdn).map_err(|e| SetupError::Invalid(format!("name {}: {e}", q.name)))?;
        let mut m = Message::query();
        m.metadata.id = 0;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name, rtype));
        if t.edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        let wire = m.to_vec().map_err(|e| SetupError::Invalid(format!("query {}: {e}", q.name)))?;
        out.push(Arc::new(
            Template::new(wire).ok_or_else(|| SetupError::Invalid(format!("query {}: malformed", q.name)))?,
        ));
    }
    if out.is_empty() {
        return Err(SetupError::Invalid("no queries".into()));
    }
    Ok(out)
}

impl DnsAttempt {
    pub async fn build(t: &DnsTarget, p: &Pressure, mounts: &Mounts) -> Result<Self, SetupError> {
        let server = resolve_server(&t.server).await?;
        let queries = templates(t, server)?;
        let tls = || -> Result<Arc<rustls::ClientConfig>, SetupError> {
            Ok(Arc::new(client_tls(&t.tls, vec![b"dot".to_vec()], mounts)?))
        };
        let transport = match (t.protocol, server) {
            (DnsProtocol::Https, _) => {
                let DnsServer::Url(u) = &t.server else {
                    return Err(SetupError::Invalid("DNS over HTTPS needs a URL".into()));
                };
                let url = reqwest::Url::parse(u).map_err(|e| SetupError::Invalid(format!("url {u}: {e}")))?;
                let cfg = client_tls(&t.tls, vec![b"h2".to_vec(), b"http/1.1".to_vec()], mounts)?;
                let mut b = reqwest::Client::builder()
                    .no_proxy()
                    .tls_backend_preconfigured(cfg)
                    .connect_timeout(p.timeout);
                if p.connections == Connections::Fresh {
                    b = b.pool_max_idle_per_host(0);
                }
                Transport::Https {
                    client: b.build().map_err(SetupError::Client)?,
                    url,
                }
            }
            (_, None) => return Err(SetupError::Server("no server address".into())),
            (DnsProtocol::Udp, Some(addr)) => {
                Transport::Udp(UdpPool::new(addr, UDP_SOCKETS.min(p.max_in_flight as usize).max(1))?)
            }
            (proto, Some(addr)) => {
                let tls = if proto == DnsProtocol::Tls {
                    let name = match &t.tls.server_name {
                        Some(n) => ServerName::try_from(n.clone()).map_err(|e| SetupError::Invalid(format!("tls.serverName {n}: {e}")))?,
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
                    reset: p.connections == Connections::Fresh,
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
            timeout: p.timeout,
        })
    }

    /// The server's address and port as found (or its URL).
    pub fn server(&self) -> &str {
        &self.server
    }

    fn judge(&self, reply: &[u8]) -> Outcome {
        let Some(head) = reply.first_chunk::<12>() else {
            return Outcome::Failed(ErrorKind::Protocol);
        };
        if head[2] & 0x02 != 0 {
            return Outcome::Failed(ErrorKind::Truncated);
        }
        let rcode = (head[3] & 0x0f) as u16;
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
        // The engine's own timeout (started just before this) ends the attempt as `timeout`;
        // a mismatched reply must turn it into `protocol` a little before that: tokio's timer
        // ticks in milliseconds, and this thread may be descheduled between the two.
        let mismatch_deadline = Instant::now() + self.timeout - (self.timeout / 4).min(Duration::from_millis(5));
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.queries.len();
        let Some(query) = self.queries.get(i) else {
            return Outcome::Failed(ErrorKind::Other);
        };
        let reply = match &self.transport {
            Transport::Udp(pool) => pool.exchange(query, mismatch_deadline).await,
            Transport::Stream(mux) => mux.exchange(query, mismatch_deadline).await,
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
                    ErrorKind::Protocol => {
                        "malformed reply, a reply to another query (ID, QR bit, opcode or question differ), or an HTTP error status from the DoH server"
                    }
                    ErrorKind::Dns => "the DoH server's name does not resolve",
                    ErrorKind::Timeout => "no reply within the timeout",
                    ErrorKind::Auth | ErrorKind::Query | ErrorKind::Other => "network error",
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
    waiting: Mutex<HashMap<u16, Waiter>>,
    /// Tells registrations apart when an ID is reused: a delivered reply frees its ID while
    /// the attempt that sent it still holds its [`Registration`].
    next_token: AtomicU64,
}

struct Waiter {
    token: u64,
    tx: oneshot::Sender<Reply>,
    query: Arc<Template>,
    /// A reply with this ID arrived that does not answer the query.
    mismatched: bool,
}

/// Removes a query's entry when its attempt ends (answered, timed out or cancelled).
struct Registration<'a> {
    pending: &'a Pending,
    id: u16,
    token: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut w = self.pending.lock();
        // only its own entry: the ID may already belong to a newer query
        if w.get(&self.id).is_some_and(|waiter| waiter.token == self.token) {
            w.remove(&self.id);
        }
    }
}

impl Registration<'_> {
    /// The reply to the query; `Protocol` once `mismatch_deadline` passes when only replies
    /// that do not answer it came. Otherwise the engine's timeout ends the wait.
    async fn wait(&self, mut rx: oneshot::Receiver<Reply>, mismatch_deadline: Instant) -> Reply {
        match tokio::time::timeout_at(mismatch_deadline, &mut rx).await {
            Ok(r) => r.unwrap_or(Err(ErrorKind::Reset)),
            Err(_)
                if self
                    .pending
                    .lock()
                    .get(&self.id)
                    .is_some_and(|w| w.token == self.token && w.mismatched) =>
            {
                Err(ErrorKind::Protocol)
            }
            Err(_) => rx.await.unwrap_or(Err(ErrorKind::Reset)),
        }
    }
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<u16, Waiter>> {
        // a panic elsewhere cannot leave the map inconsistent: every change is one call
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, query: &Arc<Template>) -> Result<(Registration<'_>, oneshot::Receiver<Reply>), ErrorKind> {
        self.register_with(query, random_id)
    }

    /// As [`register`](Self::register), with IDs drawn from `next_id` until one is free.
    fn register_with(
        &self,
        query: &Arc<Template>,
        mut next_id: impl FnMut() -> u16,
    ) -> Result<(Registration<'_>, oneshot::Receiver<Reply>), ErrorKind> {
        let (tx, rx) = oneshot::channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut w = self.lock();
        if w.len() >= 60_000 {
            return Err(ErrorKind::Other);
        }
        loop {
            let id = next_id();
            if let std::collections::hash_map::Entry::Vacant(e) = w.entry(id) {
                e.insert(Waiter {
                    token,
                    tx,
                    query: query.clone(),
                    mismatched: false,
                });
                return Ok((
                    Registration {
                        pending: self,
                        id,
                        token,
                    },
                    rx,
                ));
            }
        }
    }

    fn deliver(&self, reply: &[u8]) {
        let Some(&[a, b]) = reply.get(..2) else { return };
        let id = u16::from_be_bytes([a, b]);
        let mut w = self.lock();
        let Some(waiter) = w.get_mut(&id) else { return };
        if !is_reply_to(&waiter.query, id, reply) {
            waiter.mismatched = true;
            return;
        }
        if let Some(waiter) = w.remove(&id) {
            let _ = waiter.tx.send(Ok(reply.to_vec()));
        }
    }

    fn fail_all(&self, kind: ErrorKind) {
        for (_, waiter) in self.lock().drain() {
            let _ = waiter.tx.send(Err(kind));
        }
    }
}

fn with_id(query: &[u8], id: u16) -> Vec<u8> {
    let mut q = query.to_vec();
    if let Some(head) = q.get_mut(..2) {
        head.copy_from_slice(&id.to_be_bytes());
    }
    q
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
    fn new(server: SocketAddr, n: usize) -> Result<Self, SetupError> {
        let socket_error = |what: String| move |source| SetupError::Socket { what, source };
        let mut socks = Vec::new();
        for _ in 0..n {
            let local = if server.is_ipv4() {
                SocketAddr::from(([0u8; 4], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            };
            let std_sock = std::net::UdpSocket::bind(local).map_err(socket_error("UDP socket".into()))?;
            std_sock
                .connect(server)
                .map_err(socket_error(format!("UDP socket to {server}")))?;
            std_sock
                .set_nonblocking(true)
                .map_err(socket_error("UDP socket".into()))?;
            let socket = Arc::new(UdpSocket::from_std(std_sock).map_err(socket_error("UDP socket".into()))?);
            let pending = Arc::new(Pending::default());
            let (s2, p2) = (socket.clone(), pending.clone());
            let reader = tokio::spawn(async move {
                let mut buf = vec![0u8; 65_535];
                loop {
                    match s2.recv(&mut buf).await {
                        Ok(n) => p2.deliver(buf.get(..n).unwrap_or_default()),
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

    async fn exchange(&self, query: &Arc<Template>, mismatch_deadline: Instant) -> Reply {
        let s = self
            .socks
            .get(self.next.fetch_add(1, Ordering::Relaxed) % self.socks.len())
            .ok_or(ErrorKind::Other)?;
        let (reg, rx) = s.pending.register(query)?;
        if let Err(e) = s.socket.send(&with_id(&query.wire, reg.id)).await {
            return Err(io_kind(&e));
        }
        reg.wait(rx, mismatch_deadline).await
    }
}

#[derive(Clone)]
struct Connector {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
    /// End the connection with a reset ([`crate::probe::reset_on_drop`]): a connection per
    /// query closes first, as a TcpCheck's attempt does.
    reset: bool,
}

impl Connector {
    async fn connect(&self) -> Result<Box<dyn Io>, ErrorKind> {
        let tcp = match tokio::time::timeout(self.timeout, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(io_kind(&e)),
            Err(_) => return Err(ErrorKind::Timeout),
        };
        let _ = tcp.set_nodelay(true);
        if self.reset {
            crate::probe::reset_on_drop(&tcp);
        }
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
async fn fresh_exchange(c: &Connector, query: &Template) -> Reply {
    let mut s = c.connect().await?;
    let id = random_id();
    s.write_all(&frame(&query.wire, id)).await.map_err(|e| io_kind(&e))?;
    let reply = read_frame(&mut s).await.map_err(|e| io_kind(&e))?;
    // dropped, the connection resets (see `Connector::reset`)
    if !is_reply_to(query, id, &reply) {
        return Err(ErrorKind::Protocol);
    }
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
        let (read, write) = tokio::io::split(stream);
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

    async fn exchange(&self, query: &Arc<Template>, mismatch_deadline: Instant) -> Reply {
        let c = self.conn().await?;
        let (reg, rx) = c.pending.register(query)?;
        let sent = c.writer.lock().await.write_all(&frame(&query.wire, reg.id)).await;
        if let Err(e) = sent {
            c.dead.store(true, Ordering::Release);
            return Err(io_kind(&e));
        }
        reg.wait(rx, mismatch_deadline).await
    }
}

/// RFC 8484: the query goes with ID 0 (caches key on the body), so the reply must carry 0.
async fn doh(client: &reqwest::Client, url: &reqwest::Url, query: &Template) -> Reply {
    let resp = client
        .post(url.clone())
        .header("content-type", "application/dns-message")
        .header("accept", "application/dns-message")
        .body(query.wire.clone())
        .send()
        .await
        .map_err(|e| classify(&e))?;
    if !resp.status().is_success() {
        return Err(ErrorKind::Protocol);
    }
    let reply = resp.bytes().await.map_err(|e| classify(&e))?;
    if !is_reply_to(query, 0, &reply) {
        return Err(ErrorKind::Protocol);
    }
    Ok(reply.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("web.kpatrol.test.").unwrap(),
            RecordType::A,
        ));
        Template::new(m.to_vec().unwrap()).unwrap()
    }

    /// The query as a server would answer it: ID, QR and RA set, the question echoed.
    fn reply(t: &Template, id: u16) -> Vec<u8> {
        let mut r = with_id(&t.wire[..t.question_end], id);
        r[2] |= 0x80;
        r[3] = 0x80;
        r[6..12].fill(0);
        r
    }

    #[test]
    fn a_reply_must_answer_the_query_it_claims_to() {
        let t = template();
        let ok = reply(&t, 0x1234);
        assert!(is_reply_to(&t, 0x1234, &ok));
        assert!(!is_reply_to(&t, 0x1235, &ok), "another ID");
        let mut upper = ok.clone();
        upper[13..16].copy_from_slice(b"WeB");
        assert!(is_reply_to(&t, 0x1234, &upper), "names compare case-insensitively");
        let echo = with_id(&t.wire, 0x1234);
        assert!(!is_reply_to(&t, 0x1234, &echo), "the query itself (no QR bit)");
        let mut other_name = ok.clone();
        other_name[13] = b'x';
        assert!(!is_reply_to(&t, 0x1234, &other_name));
        let n = t.question_end;
        let mut other_type = ok.clone();
        other_type[n - 3] = 28; // AAAA
        assert!(!is_reply_to(&t, 0x1234, &other_type));
        let mut other_class = ok.clone();
        other_class[n - 1] = 3; // CH
        assert!(!is_reply_to(&t, 0x1234, &other_class));
        let mut other_opcode = ok.clone();
        other_opcode[2] |= 2 << 3; // STATUS
        assert!(!is_reply_to(&t, 0x1234, &other_opcode));
        // no question: only an error reply may leave it out
        let mut bare = ok[..12].to_vec();
        bare[5] = 0;
        assert!(!is_reply_to(&t, 0x1234, &bare));
        bare[3] |= 1; // FORMERR
        assert!(is_reply_to(&t, 0x1234, &bare));
        for cut in 0..ok.len() {
            assert!(!is_reply_to(&t, 0x1234, &ok[..cut]), "cut at {cut}");
        }
    }

    /// A delivered reply frees its ID while its attempt still runs; a newer query that draws
    /// the same ID must keep its entry when the older attempt ends (it used to lose it and
    /// count a `reset`: about a hundred per max-rate run).
    #[tokio::test]
    async fn an_ended_attempt_leaves_a_reused_id_to_its_new_query() {
        let t = Arc::new(template());
        let pending = Pending::default();
        let (older, older_rx) = pending.register_with(&t, || 7).unwrap();
        pending.deliver(&reply(&t, 7));
        let far = Instant::now() + Duration::from_secs(5);
        assert!(older.wait(older_rx, far).await.is_ok());
        let (newer, newer_rx) = pending.register_with(&t, || 7).unwrap();
        drop(older);
        pending.deliver(&reply(&t, 7));
        assert_eq!(newer.wait(newer_rx, far).await, Ok(reply(&t, 7)));
    }

    #[test]
    fn query_ids_are_not_sequential() {
        let ids: Vec<u16> = (0..1000).map(|_| random_id()).collect();
        let steps = ids.windows(2).filter(|w| w[1] == w[0].wrapping_add(1)).count();
        assert!(steps < 10, "{steps} sequential steps");
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert!(distinct.len() > 950, "{} distinct", distinct.len());
    }
}
