//! Real servers on loopback for the integration tests: HTTP/1.1 + h2c, HTTPS (with and
//! without a client-certificate requirement), a server that stalls for a window, one that
//! resets connections, raw servers that answer in odd shapes (echoes, endless heads and
//! bodies, split writes, precise delays), a port nobody listens on, and a free one for a
//! server the test starts itself. Certificates come from rcgen. PostgreSQL and MariaDB are
//! in [`sql`], unbound in [`unbound`].
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

pub mod cluster;
pub mod otel;
pub mod sql;
pub mod unbound;

/// What a test server saw.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    pub http2: AtomicU64,
    /// Method, path, headers and body of the last request.
    pub last: Mutex<Option<SeenRequest>>,
}

/// A request as a test server saw it: method, path, headers and body.
pub type SeenRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// How a test server answers.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 at once.
    Ok,
    /// This status at once.
    Status(u16),
    /// 200 after this long.
    Delay(Duration),
    /// 200 at once, except that requests arriving in [from, from + length) after the
    /// server started are held until the window ends.
    Stall { from: Duration, length: Duration },
    /// `/` redirects to `/ok` with 302; `/ok` answers 200.
    Redirect,
}

pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    b: Behaviour,
    seen: Arc<Seen>,
    started: Instant,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if req.version() == hyper::Version::HTTP_2 {
        seen.http2.fetch_add(1, Ordering::SeqCst);
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    *seen.last.lock().unwrap() = Some((method, path.clone(), headers, body));
    let mut status = StatusCode::OK;
    let mut location = None;
    match b {
        Behaviour::Ok => {}
        Behaviour::Status(s) => status = StatusCode::from_u16(s).unwrap(),
        Behaviour::Delay(d) => tokio::time::sleep(d).await,
        Behaviour::Stall { from, length } => {
            let at = started.elapsed();
            if at >= from && at < from + length {
                tokio::time::sleep_until(started + from + length).await;
            }
        }
        Behaviour::Redirect => {
            if path != "/ok" {
                status = StatusCode::FOUND;
                location = Some("/ok");
            }
        }
    }
    let mut r = Response::builder().status(status);
    if let Some(l) = location {
        r = r.header("location", l);
    }
    Ok(r.body(Full::new(Bytes::from_static(b"ok\n"))).unwrap())
}

fn spawn_conn<S>(io: S, b: Behaviour, seen: Arc<Seen>, started: Instant)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| handle(req, b.clone(), seen.clone(), started));
        let _ = auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), svc)
            .await;
    });
}

/// Plain HTTP: HTTP/1.1 and h2c (prior knowledge) on one port.
pub async fn http(b: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            s2.connections.fetch_add(1, Ordering::SeqCst);
            spawn_conn(stream, b.clone(), s2.clone(), started);
        }
    });
    Server { addr, seen, task }
}

/// Test PKI: a CA, a server certificate for 127.0.0.1 and localhost, a client certificate.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn make_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_ca("kpatrol test CA");
        let write = |name: &str, text: String| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let skey = rcgen::KeyPair::generate().unwrap();
        let sparams = rcgen::CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "target.kpatrol.test".to_string(),
        ])
        .unwrap();
        let scert = sparams.signed_by(&skey, &ca).unwrap();
        let ckey = rcgen::KeyPair::generate().unwrap();
        let mut cparams = rcgen::CertificateParams::new(vec!["client.kpatrol.test".to_string()]).unwrap();
        cparams.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let ccert = cparams.signed_by(&ckey, &ca).unwrap();
        let other = make_ca("another CA");
        Pki {
            ca: write("ca.crt", ca.pem()),
            server_cert: write("server.crt", scert.pem()),
            server_key: write("server.key", skey.serialize_pem()),
            client_cert: write("client.crt", ccert.pem()),
            client_key: write("client.key", ckey.serialize_pem()),
            other_ca: write("other-ca.crt", other.pem()),
            dir,
        }
    }
}

fn certs(p: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(p)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

/// HTTPS with ALPN h2 and http/1.1; with `require_client_cert`, only clients with a
/// certificate from the test CA get through the handshake.
pub async fn https(b: Behaviour, pki: &Pki, require_client_cert: bool) -> Server {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&pki.ca) {
            roots.add(c).unwrap();
        }
        let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(v)
    } else {
        builder.with_no_client_auth()
    };
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let mut cfg = builder.with_single_cert(certs(&pki.server_cert), key).unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            s2.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, b, seen) = (acceptor.clone(), b.clone(), s2.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    spawn_conn(tls, b, seen, started);
                }
            });
        }
    });
    Server { addr, seen, task }
}

/// Accepts, reads the request, then resets the connection (RST, via SO_LINGER 0).
pub async fn resetting() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            s2.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                #[allow(deprecated)] // zero linger sends RST at once and never blocks
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
            });
        }
    });
    Server { addr, seen, task }
}

/// A loopback port free at the moment (TCP on 127.0.0.1 and ::1, UDP on 127.0.0.1) for a
/// server the test starts and that cannot be handed a listener: unbound, PostgreSQL, MariaDB,
/// the collector. It is picked from 20000 to 29999, below the NodePort range (30000 on) and
/// the kernel's ephemeral range (32768 on): the kernel hands ports of that range to every
/// connect() and bind(0) of the tests running beside this one, so a port released there can
/// be taken again before the server binds it. Each call in a process returns another port,
/// from a start that differs between processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const LOW: u16 = 20000;
    const SPAN: u16 = 10000;
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let seed = || {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        ((nanos ^ std::process::id().wrapping_mul(2654435761)) % u32::from(SPAN)) as u16
    };
    let _ = NEXT.compare_exchange(u16::MAX, seed(), Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("::1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port from {LOW} to {}", LOW + SPAN - 1);
}

/// A loopback port nobody listens on (bound, then released).
/// Another test may take a released port at once: try again with a new one.
pub async fn closed_port() -> SocketAddr {
    for _ in 0..20 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        // Make sure it refuses now.
        if TcpStream::connect(a).await.is_err() {
            return a;
        }
    }
    panic!("no loopback port stayed closed in 20 tries");
}

/// Waits, at most `within`, until something accepts on `port` of 127.0.0.1.
pub fn wait_port(port: u16, what: &str, within: Duration) {
    wait_addr(SocketAddr::from(([127, 0, 0, 1], port)), what, within)
}

/// Waits, at most `within`, until something accepts on `addr`.
pub fn wait_addr(addr: SocketAddr, what: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not open {addr}");
        std::thread::sleep(Duration::from_millis(20)); // polling the port, bounded
    }
}

/// Runs one round of `task` as a pod does: `kpatrol-probe MODE --task TASK
/// --termination-log LOG`.
#[allow(dead_code)] // not every test binary runs the probe
pub async fn probe_round(mode: &str, task: &Path, log: &Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kpatrol-probe"))
        .args([mode, "--task"])
        .arg(task)
        .arg("--termination-log")
        .arg(log)
        .output()
        .await
        .unwrap()
}

/// Sockets of this network namespace connected to `port` on 127.0.0.1, in any state
/// (`/proc/net/tcp`: the remote address is the third column, `0100007F:PORT` in hex).
pub fn sockets_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(2) == Some(remote.as_str()))
        .count()
}

/// Writes `text` as a task file in `dir` and returns its path.
pub fn task_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A raw HTTP/1.1 server: reads each request head (and a Content-Length body), answers
/// with `response` verbatim, and closes the connection after each answer when
/// `close_after` is set (without saying so, like a server whose keep-alive timed out).
pub async fn raw(response: &'static [u8], close_after: bool) -> Server {
    raw_answering(Answer::Once(response), close_after).await
}

/// How [`raw_answering`] answers each request.
#[derive(Clone, Copy)]
pub enum Answer {
    /// These bytes in one write.
    Once(&'static [u8]),
    /// A head and a body in two writes, with Nagle's algorithm left on (as Python's
    /// http.server does): the body waits for the client to acknowledge the head.
    Split(&'static [u8], &'static [u8]),
    /// The request itself, byte for byte, and nothing else.
    Echo,
    /// `start`, then `chunk` again and again until the client goes away, pausing `pause`
    /// between chunks (a trickle) when it is not zero.
    Endless {
        start: &'static [u8],
        chunk: &'static [u8],
        pause: Duration,
    },
}

/// A raw server answering every request as `answer` says; see [`raw`].
pub async fn raw_answering(answer: Answer, close_after: bool) -> Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            if matches!(answer, Answer::Split(..)) {
                stream.set_nodelay(false).unwrap();
            }
            s2.connections.fetch_add(1, Ordering::SeqCst);
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request: Vec<u8> = buf.drain(..head_end + len).collect();
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    let written = match answer {
                        Answer::Once(r) => stream.write_all(r).await,
                        Answer::Split(head, body) => match stream.write_all(head).await {
                            Ok(()) => stream.write_all(body).await,
                            e => e,
                        },
                        Answer::Echo => stream.write_all(&request).await,
                        Answer::Endless { start, chunk, pause } => {
                            let mut r = stream.write_all(start).await;
                            while r.is_ok() {
                                if !pause.is_zero() {
                                    tokio::time::sleep(pause).await; // plays slow
                                }
                                r = stream.write_all(chunk).await;
                            }
                            r
                        }
                    };
                    if written.is_err() || close_after {
                        return;
                    }
                }
            });
        }
    });
    Server { addr, seen, task }
}

/// A plain-thread HTTP/1.1 server answering every request with `response` after `delay`,
/// slept precisely (well under a millisecond of error, where tokio's timer rounds up to
/// whole milliseconds): for answers that arrive just after a short timeout.
pub fn raw_delayed(response: &'static [u8], delay: Duration) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        std::thread::sleep(delay); // plays slow
                        if stream.write_all(response).is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}
