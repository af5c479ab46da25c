//! A lean PostgreSQL client: connect (TLS after an SSLRequest when the target asks for it,
//! through rustls), log in (SCRAM-SHA-256, MD5 or a clear-text password, as the server
//! asks), and run one simple query per call from a message serialised once, reading replies
//! until the server is ready again. One write and, mostly, one read per query: no task per
//! connection and no channel between the caller and the socket. Messages come from
//! `postgres-protocol` (tokio-postgres's own crate), which also does SCRAM.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::{backend, frontend};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Why a connection or a query failed.
#[derive(Debug)]
pub enum PgError {
    /// The socket failed (connect, write, read).
    Io(std::io::Error),
    /// The server closed the connection without an error message.
    Closed,
    /// The server's ErrorResponse: its SQLSTATE, its message, and whether it ended the
    /// session (FATAL, PANIC).
    Server { code: String, message: String, fatal: bool },
    /// Something the server sent that this client does not follow.
    Protocol(String),
    /// The target asks for TLS and the server does not offer it.
    NoTls,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Io(e) => write!(f, "{e}"),
            PgError::Closed => write!(f, "the server closed the connection"),
            PgError::Server { code, message, .. } => write!(f, "{message} (SQLSTATE {code})"),
            PgError::Protocol(p) => write!(f, "protocol: {p}"),
            PgError::NoTls => write!(f, "the server does not offer TLS (ssl = off)"),
        }
    }
}

impl From<std::io::Error> for PgError {
    fn from(e: std::io::Error) -> Self {
        PgError::Io(e)
    }
}

/// One logged-in connection.
pub struct PgConn {
    stream: Stream,
    buf: BytesMut,
    /// What a cancel request names: the backend's process ID and secret key.
    pub key: Option<(i32, i32)>,
}

/// Where and who: the server, the user, the password and the database.
pub struct Login<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub database: Option<&'a str>,
    pub tls: Option<&'a Tls>,
}

/// TLS settings: the rustls configuration and the name the certificate must have.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// The connection's socket, plain or inside TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

const READ_CHUNK: usize = 8 * 1024;

impl PgConn {
    /// Connects and logs in; ready for queries.
    pub async fn connect(l: &Login<'_>) -> Result<PgConn, PgError> {
        let mut tcp = TcpStream::connect((l.host, l.port)).await?;
        let _ = tcp.set_nodelay(true);
        let stream = match l.tls {
            None => Stream::Plain(tcp),
            Some(t) => {
                let mut out = BytesMut::new();
                frontend::ssl_request(&mut out);
                tcp.write_all(&out).await?;
                let mut answer = [0u8; 1];
                tcp.read_exact(&mut answer).await?;
                if answer != *b"S" {
                    return Err(PgError::NoTls);
                }
                let tls = tokio_rustls::TlsConnector::from(t.config.clone())
                    .connect(t.name.clone(), tcp)
                    .await?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut c = PgConn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            key: None,
        };
        let mut out = BytesMut::new();
        let mut params = vec![("user", l.user), ("application_name", "kpatrol")];
        if let Some(db) = l.database {
            params.push(("database", db));
        }
        frontend::startup_message(params, &mut out)?;
        c.send(&out).await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            out.clear();
            match c.message().await? {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    frontend::password_message(l.password.as_bytes(), &mut out)?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        l.user.as_bytes(),
                        l.password.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut out)?;
                }
                backend::Message::AuthenticationSasl(_) => {
                    // plain SCRAM-SHA-256, without channel binding (the server offers it
                    // only with TLS, and does not require it)
                    let s = ScramSha256::new(l.password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut out)?;
                    scram = Some(s);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::Protocol("SCRAM continue before it started".into()))?;
                    s.update(body.data())
                        .map_err(|e| PgError::Protocol(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut out)?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::Protocol("SCRAM final before it started".into()))?;
                    s.finish(body.data())
                        .map_err(|e| PgError::Protocol(format!("SCRAM: {e}")))?;
                }
                backend::Message::BackendKeyData(k) => c.key = Some((k.process_id(), k.secret_key())),
                backend::Message::ReadyForQuery(_) => return Ok(c),
                backend::Message::ParameterStatus(_) | backend::Message::NoticeResponse(_) => {}
                _ => return Err(PgError::Protocol("an unexpected message while logging in".into())),
            }
            if !out.is_empty() {
                c.send(&out).await?;
            }
        }
    }

    /// The next whole message while logging in; an ErrorResponse is the error.
    async fn message(&mut self) -> Result<backend::Message, PgError> {
        loop {
            if let Some((tag, len)) = header(&self.buf)
                && self.buf.len() >= len
            {
                if tag == b'E' {
                    let e = server_error(self.buf.get(5..len).unwrap_or_default());
                    self.buf.advance(len);
                    return Err(e);
                }
                return match backend::Message::parse(&mut self.buf) {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(PgError::Protocol("a short message".into())),
                    Err(e) => Err(PgError::Protocol(e.to_string())),
                };
            }
            self.fill().await?;
        }
    }

    /// Writes `bytes` and flushes them (TLS keeps records until flushed; TCP has nothing to
    /// flush).
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more of what the server sent; its end is [`PgError::Closed`].
    async fn fill(&mut self) -> Result<(), PgError> {
        self.buf.reserve(READ_CHUNK);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(PgError::Closed);
        }
        Ok(())
    }

    /// Sends `query` (a Query message, serialised once) and reads until the server is ready
    /// for the next: `Ok` when no ErrorResponse came, else the first error. After an error
    /// that was not FATAL the connection is ready again.
    pub async fn query(&mut self, query: &[u8]) -> Result<(), PgError> {
        self.send(query).await?;
        let mut error = None;
        loop {
            while let Some((tag, len)) = header(&self.buf)
                && self.buf.len() >= len
            {
                match tag {
                    b'Z' => {
                        self.buf.advance(len);
                        return error.map_or(Ok(()), Err);
                    }
                    b'E' => {
                        let e = server_error(self.buf.get(5..len).unwrap_or_default());
                        self.buf.advance(len);
                        if matches!(e, PgError::Server { fatal: true, .. }) {
                            return Err(e);
                        }
                        error.get_or_insert(e);
                    }
                    // rows, the command's tag, notices, parameter changes: nothing to judge
                    _ => self.buf.advance(len),
                }
            }
            self.fill().await?;
        }
    }
}

impl PgConn {
    /// Says goodbye (Terminate) before the connection closes, so the server logs no
    /// unexpected end; a failure changes nothing.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.flush().await;
    }
}

/// A Query message for `query`, sent as is on every attempt.
pub fn query_message(query: &str) -> std::io::Result<Vec<u8>> {
    let mut out = BytesMut::new();
    frontend::query(query, &mut out)?;
    Ok(out.to_vec())
}

/// Sends a cancel request for the backend `key` on a connection of its own.
pub async fn cancel(host: &str, port: u16, key: (i32, i32)) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    frontend::cancel_request(key.0, key.1, &mut out);
    let mut s = TcpStream::connect((host, port)).await?;
    s.write_all(&out).await?;
    // the server closes once it has read the request
    let mut end = [0u8; 1];
    let _ = s.read(&mut end).await;
    Ok(())
}

/// The tag and whole length (tag included) of the message at the start of `buf`.
fn header(buf: &[u8]) -> Option<(u8, usize)> {
    let (&tag, rest) = buf.split_first()?;
    let len = rest.first_chunk::<4>().map(|b| u32::from_be_bytes(*b) as usize)?;
    Some((tag, len + 1))
}

/// An ErrorResponse's fields: `V` (severity, not localised), `C` (SQLSTATE), `M` (message).
fn server_error(body: &[u8]) -> PgError {
    let (mut code, mut message, mut severity) = (String::new(), String::new(), String::new());
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(tail.get(..end).unwrap_or_default()).into_owned();
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    PgError::Server {
        fatal: severity == "FATAL" || severity == "PANIC",
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_read_field_by_field() {
        let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0";
        match server_error(body) {
            PgError::Server { code, message, fatal } => {
                assert_eq!(code, "28P01");
                assert_eq!(message, "password authentication failed for user \"x\"");
                assert!(fatal);
            }
            e => panic!("{e}"),
        }
        assert!(matches!(server_error(b"SERROR\0C42601\0Mx"), PgError::Server { fatal: false, .. }));
        assert!(matches!(server_error(b""), PgError::Server { fatal: false, .. }));
    }

    #[test]
    fn headers_need_five_bytes() {
        assert_eq!(header(b"Z\0\0\0\x05I"), Some((b'Z', 6)));
        assert_eq!(header(b"Z\0\0"), None);
        assert_eq!(header(b""), None);
    }
}
