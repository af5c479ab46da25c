//! A lean HTTP/1.1 client for plain-TCP targets, the path most checks take: the request is
//! serialised once, connections are kept in a small pool and reused, responses are parsed
//! with httparse and their bodies skipped without copying. It costs about half of what a
//! general client does per request, which decides the maximum rate when the target shares
//! the machine. TLS, HTTP/2 and redirects go through reqwest ([`super::attempt`]).
//!
//! Whatever a target sends, an attempt stays bounded: the head at [`MAX_HEAD`] (as hyper
//! does), everything else by the engine's per-attempt timeout.

use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::attempt::Resolved;
use crate::pressure::{Attempt, ErrorKind, Outcome};
use crate::probe::io_kind;

pub struct H1Attempt {
    samples: crate::pressure::ErrorSamples,
    /// `host:port` to resolve and connect to.
    authority: String,
    request: Vec<u8>,
    head: bool,
    reuse: bool,
    connect_timeout: Duration,
    pool: Mutex<Vec<Conn>>,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// Why an exchange failed, and whether the server sent nothing at all (a pooled
/// connection the server had closed: worth one retry on a fresh one).
struct Failure {
    kind: ErrorKind,
    nothing_received: bool,
    detail: String,
}

fn io_failure(e: &std::io::Error, nothing_received: bool) -> Failure {
    Failure {
        kind: io_kind(e),
        nothing_received,
        detail: e.to_string(),
    }
}

impl H1Attempt {
    /// Whether the fast path can carry this target: plain http, no HTTP/2, no redirects.
    pub fn fits(r: &Resolved) -> bool {
        r.url.scheme() == "http" && !r.http2 && r.redirects == 0
    }

    pub fn new(r: &Resolved, reuse: bool, connect_timeout: Duration) -> Self {
        let host = r.url.host_str().unwrap_or("localhost");
        let port = r.url.port_or_known_default().unwrap_or(80);
        let mut path = r.url.path().to_string();
        if let Some(q) = r.url.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut req = format!("{} {path} HTTP/1.1\r\nHost: ", r.method).into_bytes();
        // One Host line: the task's when it gives one (a virtual host), else the URL's.
        match r.headers.get(reqwest::header::HOST) {
            Some(v) => req.extend_from_slice(v.as_bytes()),
            None => match r.url.port() {
                Some(p) => req.extend_from_slice(format!("{host}:{p}").as_bytes()),
                None => req.extend_from_slice(host.as_bytes()),
            },
        }
        req.extend_from_slice(b"\r\n");
        let has = |name: &str| r.headers.contains_key(name);
        if !has("user-agent") {
            req.extend_from_slice(concat!("User-Agent: kpatrol/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes());
        }
        if !has("accept") {
            req.extend_from_slice(b"Accept: */*\r\n");
        }
        for (name, value) in r.headers.iter().filter(|(n, _)| *n != reqwest::header::HOST) {
            req.extend_from_slice(name.as_str().as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(value.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        let body = r.body.as_deref().unwrap_or(&[]);
        if !body.is_empty() || matches!(r.method.as_str(), "POST" | "PUT" | "PATCH") {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        if !reuse {
            req.extend_from_slice(b"Connection: close\r\n");
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        H1Attempt {
            samples: crate::pressure::ErrorSamples::redacting(r.secrets.clone()),
            authority,
            request: req,
            head: r.method == "HEAD",
            reuse,
            connect_timeout,
            pool: Mutex::new(Vec::new()),
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let fail = |kind, detail: String| Failure {
            kind,
            nothing_received: true,
            detail,
        };
        let addrs = tokio::net::lookup_host(&self.authority)
            .await
            .map_err(|e| fail(ErrorKind::Dns, format!("cannot resolve {}: {e}", self.authority)))?;
        let mut last = fail(ErrorKind::Dns, format!("{} resolves to no address", self.authority));
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn {
                        stream,
                        buf: BytesMut::with_capacity(4096),
                    });
                }
                Ok(Err(e)) => last = fail(io_kind(&e), format!("connect to {addr}: {e}")),
                Err(_) => last = fail(ErrorKind::Timeout, format!("connect to {addr} timed out")),
            }
        }
        Err(last)
    }

    /// Sends the request on `c` and reads the whole answer. Returns the status and whether
    /// the connection can carry another request.
    async fn exchange(&self, c: &mut Conn) -> Result<(u16, bool), Failure> {
        c.stream
            .write_all(&self.request)
            .await
            .map_err(|e| io_failure(&e, true))?;
        c.buf.clear();
        loop {
            let head = parse_head(&c.buf).map_err(|_| Failure {
                kind: ErrorKind::Protocol,
                nothing_received: false,
                detail: format!("not an HTTP/1.x answer: {}", self.shown(&c.buf)),
            })?;
            let Some(h) = head else {
                if c.buf.len() >= MAX_HEAD {
                    return Err(Failure {
                        kind: ErrorKind::Protocol,
                        nothing_received: false,
                        detail: format!(
                            "the answer's head is over {} KiB: {}",
                            MAX_HEAD / 1024,
                            self.shown(&c.buf)
                        ),
                    });
                }
                let empty = c.buf.is_empty();
                fill(c, !empty).await.map_err(|kind| Failure {
                    kind,
                    nothing_received: empty,
                    detail: closed(kind, "before the answer's head"),
                })?;
                continue;
            };
            c.buf.advance(h.len);
            if (100..200).contains(&h.status) {
                continue; // 100 Continue and friends: the real answer follows
            }
            let fail = |kind| Failure {
                kind,
                nothing_received: false,
                detail: closed(kind, "in the answer's body"),
            };
            let no_body = self.head || h.status == 204 || h.status == 304;
            let keep = if no_body {
                h.keep_alive
            } else if h.chunked {
                skip_chunked(c).await.map_err(fail)?;
                h.keep_alive
            } else if let Some(n) = h.content_length {
                skip(c, n).await.map_err(fail)?;
                h.keep_alive
            } else {
                // no length: the body runs to the end of the connection
                loop {
                    c.buf.clear();
                    quick_ack(&c.stream);
                    match c.stream.read_buf(&mut c.buf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(io_failure(&e, false)),
                    }
                }
                false
            };
            return Ok((h.status, keep && c.buf.is_empty()));
        }
    }
}

impl Attempt for H1Attempt {
    async fn attempt(&self) -> Outcome {
        let pooled = if self.reuse {
            crate::pressure::lock(&self.pool).pop()
        } else {
            None
        };
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => match self.connect().await {
                Ok(c) => c,
                Err(f) => return self.failed(f),
            },
        };
        let mut result = self.exchange(&mut conn).await;
        if let Err(Failure {
            nothing_received: true, ..
        }) = &result
            && was_pooled
        {
            // The server closed this idle connection: retry once on a new one.
            conn = match self.connect().await {
                Ok(c) => c,
                Err(f) => return self.failed(f),
            };
            result = self.exchange(&mut conn).await;
        }
        match result {
            Ok((status, keep)) => {
                if keep && self.reuse {
                    crate::pressure::lock(&self.pool).push(conn);
                }
                Outcome::Answered(status)
            }
            Err(f) => self.failed(f),
        }
    }

    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        self.samples.all()
    }
}

impl H1Attempt {
    fn failed(&self, f: Failure) -> Outcome {
        self.samples.note(f.kind, || f.detail);
        Outcome::Failed(f.kind)
    }

    /// The start of what a target sent, for a sample: Secret values redacted first (a
    /// target may echo the request), then cut, quoted and escaped.
    fn shown(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let text = crate::pressure::redact_fragment(&text, self.samples.secrets());
        let end = text.floor_char_boundary(SHOWN);
        format!("{:?}", &text[..end])
    }
}

/// The longest answer head read; a longer one is a `protocol` error (hyper's bound too).
pub const MAX_HEAD: usize = 64 * 1024;

/// Bytes of an answer a sample shows.
const SHOWN: usize = 40;

/// Header fields parsed without allocating; an answer with more gets an array sized to it.
const FEW_HEADERS: usize = 64;

fn closed(kind: ErrorKind, when: &str) -> String {
    match kind {
        ErrorKind::Reset => format!("connection closed {when}"),
        ErrorKind::Protocol => format!("malformed answer {when}"),
        other => format!("{} {when}", other.as_str()),
    }
}

struct Head {
    len: usize,
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse_with(buf, &mut headers) {
        Err(Bad::TooManyHeaders) => {
            // Every field takes a line of its own: that many fit, and the head is bounded.
            let lines = buf.iter().filter(|b| **b == b'\n').count();
            let mut headers = vec![httparse::EMPTY_HEADER; lines];
            parse_with(buf, &mut headers).map_err(|_| ())
        }
        r => r.map_err(|_| ()),
    }
}

enum Bad {
    TooManyHeaders,
    Malformed,
}

fn parse_with<'b>(buf: &'b [u8], headers: &mut [httparse::Header<'b>]) -> Result<Option<Head>, Bad> {
    let mut resp = httparse::Response::new(headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Bad::TooManyHeaders),
        Err(_) => return Err(Bad::Malformed),
    };
    let mut h = Head {
        len,
        status: resp.code.ok_or(Bad::Malformed)?,
        content_length: None,
        chunked: false,
        keep_alive: resp.version == Some(1),
    };
    for header in resp.headers.iter() {
        let v = header.value;
        if header.name.eq_ignore_ascii_case("content-length") {
            let s = std::str::from_utf8(v).map_err(|_| Bad::Malformed)?;
            h.content_length = Some(s.trim().parse().map_err(|_| Bad::Malformed)?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = v.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            if v.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                h.keep_alive = false;
            } else if v.windows(10).any(|w| w.eq_ignore_ascii_case(b"keep-alive")) {
                h.keep_alive = true;
            }
        }
    }
    Ok(Some(h))
}

/// Reads more bytes into the buffer; the end of the stream is a reset. `started`: part
/// of this answer is in already (see [`quick_ack`]).
async fn fill(c: &mut Conn, started: bool) -> Result<(), ErrorKind> {
    if c.buf.capacity() - c.buf.len() < 1024 {
        c.buf.reserve(4096);
    }
    if started {
        quick_ack(&c.stream);
    }
    match c.stream.read_buf(&mut c.buf).await {
        Ok(0) => Err(ErrorKind::Reset),
        Ok(_) => Ok(()),
        Err(e) => Err(io_kind(&e)),
    }
}

/// Skips `n` bytes of body.
async fn skip(c: &mut Conn, mut n: u64) -> Result<(), ErrorKind> {
    loop {
        let take = (c.buf.len() as u64).min(n) as usize;
        c.buf.advance(take);
        n -= take as u64;
        if n == 0 {
            return Ok(());
        }
        fill(c, true).await?;
    }
}

/// Skips a chunked body and its trailers.
async fn skip_chunked(c: &mut Conn) -> Result<(), ErrorKind> {
    loop {
        let line = read_line(c).await?;
        let size_text = line.split(|b| *b == b';').next().unwrap_or(&[]);
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            .ok_or(ErrorKind::Protocol)?;
        if size == 0 {
            // trailers up to an empty line
            while !read_line(c).await?.is_empty() {}
            return Ok(());
        }
        skip(c, size + 2).await?;
    }
}

/// One CRLF-terminated line, without the CRLF.
async fn read_line(c: &mut Conn) -> Result<Vec<u8>, ErrorKind> {
    loop {
        if let Some(i) = c.buf.windows(2).position(|w| w == b"\r\n") {
            let line = c.buf.split_to(i).to_vec();
            c.buf.advance(2);
            return Ok(line);
        }
        if c.buf.len() > MAX_HEAD {
            return Err(ErrorKind::Protocol);
        }
        fill(c, true).await?;
    }
}

/// Acknowledges at once what arrived, before waiting for the rest of an answer. A server
/// with Nagle's algorithm on (Python's http.server, many small ones) holds the rest of an
/// answer written in two parts until the first is acknowledged, and Linux delays that ACK
/// up to 40 ms on a busy connection: we would measure our own ACK policy, not the server.
/// The kernel drops the flag as it goes, so it is set again before each such read; an
/// answer that arrives in one read (the usual case) costs no call.
#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket this connection owns, with a pointer to a live c_int
    // and its size; a failure only leaves the kernel's ACK policy as it was.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_: &TcpStream) {}
