//! The TCP mode's attempt: look the host up (a name, on every attempt; an IP address is
//! parsed once), connect, write the payload when there is one, read until the reply can be
//! judged (its first bytes, or as many as the expected prefix has), then close.
//!
//! Every step runs under the task's timeout, which the engine applies around each
//! attempt, so none outlives `pressure.timeout`. A timeout's error sample names the step
//! it cut (look-up, connect, write, reply): a guard notes it when the attempt is dropped
//! unfinished.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plan::{CONNECTED, Close, MAX_PREFIX, REPLIED, Reply, TcpTarget};
use crate::duration::format_duration;
use crate::pressure::{Attempt, ErrorKind, ErrorSamples, Outcome};
use crate::probe::io_kind;

/// The longest payload sent without TCP_NODELAY: under the smallest common MSS (IPv6's
/// 1220 bytes with a 1280-byte MTU), so it is one segment, which Nagle never holds back.
const NAGLE_FREE: usize = 1220;

/// The longest stretch of a reply an error sample shows.
const SHOWN: usize = 64;

pub struct TcpAttempt {
    samples: ErrorSamples,
    to: Destination,
    send: Option<Box<[u8]>>,
    reply: Wait,
    close: Close,
    timeout: Duration,
}

enum Destination {
    Addr(SocketAddr),
    /// A name looked up on every attempt (a Service's address may change during a round).
    Name(String, u16),
}

enum Wait {
    None,
    Any,
    Prefix(Box<[u8]>),
}

/// Why an attempt failed; its text is the error sample.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the payload to {addr}: {source}")]
    Send {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the reply from {addr}: {source}")]
    Receive {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} closed the connection without replying")]
    NoReply { addr: SocketAddr },
    #[error("{addr} closed the connection after replying \"{got}\", the start of \"{want}\"")]
    Short { addr: SocketAddr, got: String, want: String },
    #[error("{addr} replied \"{got}\", not a reply starting with \"{want}\"")]
    Mismatch { addr: SocketAddr, got: String, want: String },
}

impl Failure {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::Resolve { .. } | Failure::NoAddress { .. } => ErrorKind::Dns,
            Failure::Connect { source, .. } | Failure::Send { source, .. } | Failure::Receive { source, .. } => {
                io_kind(source)
            }
            Failure::NoReply { .. } | Failure::Short { .. } | Failure::Mismatch { .. } => ErrorKind::Protocol,
        }
    }
}

/// Where an attempt is, for the sample of a timeout.
#[derive(Clone, Copy)]
enum Step {
    Resolving,
    Connecting(Option<SocketAddr>),
    Sending(SocketAddr),
    Waiting(SocketAddr, usize),
}

/// Notes a timeout sample naming the step when an attempt is dropped before it finished.
struct Unfinished<'a> {
    attempt: &'a TcpAttempt,
    step: Step,
    done: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let a = self.attempt;
        let t = format_duration(a.timeout);
        a.samples.note(ErrorKind::Timeout, || match (self.step, &a.to) {
            (Step::Resolving, Destination::Name(host, _)) => format!("looking up {host} took longer than {t}"),
            (Step::Connecting(Some(addr)), _) => format!("connecting to {addr} took longer than {t}"),
            (Step::Sending(addr), _) => format!("{addr} took no payload within {t}"),
            (Step::Waiting(addr, 0), _) => format!("connected to {addr}, no reply within {t}"),
            (Step::Waiting(addr, n), _) => {
                format!("connected to {addr}, {n} bytes of the reply within {t}, too few to judge")
            }
            _ => format!("no connection within {t}"),
        });
    }
}

impl Attempt for TcpAttempt {
    async fn attempt(&self) -> Outcome {
        let mut guard = Unfinished {
            attempt: self,
            step: Step::Resolving,
            done: false,
        };
        // The engine bounds every attempt by the task's timeout: when it fires, this future
        // is dropped unfinished and the guard notes the sample (no second timer here).
        let outcome = match self.exchange(&mut guard.step).await {
            Ok(code) => Outcome::Answered(code),
            Err(f) => {
                let kind = f.kind();
                self.samples.note(kind, || f.to_string());
                Outcome::Failed(kind)
            }
        };
        guard.done = true;
        outcome
    }

    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        self.samples.all()
    }
}

impl TcpAttempt {
    /// A target's attempt, its payload and prefix in bytes, `timeout` on every attempt.
    pub fn new(t: &TcpTarget, timeout: Duration) -> Self {
        let to = match t.host.parse::<IpAddr>() {
            Ok(ip) => Destination::Addr(SocketAddr::new(ip, t.port)),
            Err(_) => Destination::Name(t.host.clone(), t.port),
        };
        TcpAttempt {
            samples: ErrorSamples::default(),
            to,
            send: t.send.as_ref().map(|s| s.as_bytes().into()),
            reply: match &t.reply {
                Reply::None => Wait::None,
                Reply::Any => Wait::Any,
                Reply::Prefix(p) => Wait::Prefix(p.as_bytes().into()),
            },
            close: t.close,
            timeout,
        }
    }

    /// One connection: the answer code, or why not.
    async fn exchange(&self, step: &mut Step) -> Result<u16, Failure> {
        let mut stream = match &self.to {
            Destination::Addr(addr) => {
                *step = Step::Connecting(Some(*addr));
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| Failure::Connect { addr: *addr, source })?
            }
            Destination::Name(host, port) => self.connect_name(host, *port, step).await?,
        };
        let addr = match *step {
            Step::Connecting(Some(a)) => a,
            _ => stream.peer_addr().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        if self.close == Close::Reset {
            // however the attempt ends, dropping the stream then resets the connection
            crate::probe::reset_on_drop(&stream);
        }
        if let Some(payload) = &self.send {
            *step = Step::Sending(addr);
            // a payload that fits one segment leaves at once (nothing is unacknowledged
            // yet); a longer one must not wait for an ACK before its last segment
            if payload.len() > NAGLE_FREE {
                let _ = stream.set_nodelay(true);
            }
            stream
                .write_all(payload)
                .await
                .map_err(|source| Failure::Send { addr, source })?;
        }
        let want: &[u8] = match &self.reply {
            Wait::None => return Ok(CONNECTED),
            Wait::Any => &[],
            Wait::Prefix(p) => p,
        };
        // a prefix is at most MAX_PREFIX bytes, so the buffer always has room for more
        let mut buf = [0u8; MAX_PREFIX];
        let mut got = 0;
        loop {
            *step = Step::Waiting(addr, got);
            let room = buf.get_mut(got..).unwrap_or_default();
            let n = stream
                .read(room)
                .await
                .map_err(|source| Failure::Receive { addr, source })?;
            let seen = buf.get(..got + n).unwrap_or_default();
            if n == 0 {
                return Err(if got == 0 {
                    Failure::NoReply { addr }
                } else {
                    Failure::Short {
                        addr,
                        got: shown(seen),
                        want: shown(want),
                    }
                });
            }
            got += n;
            let judged = got.min(want.len());
            if seen.get(..judged) != want.get(..judged) {
                return Err(Failure::Mismatch {
                    addr,
                    got: shown(seen),
                    want: shown(want),
                });
            }
            if got >= want.len() {
                return Ok(REPLIED);
            }
        }
    }

    /// Looks `host` up and connects to its addresses in turn (the first that accepts).
    async fn connect_name(&self, host: &str, port: u16, step: &mut Step) -> Result<TcpStream, Failure> {
        *step = Step::Resolving;
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| Failure::Resolve {
                host: host.to_string(),
                source,
            })?;
        let mut last = None;
        for addr in addrs {
            *step = Step::Connecting(Some(addr));
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(source) => last = Some(Failure::Connect { addr, source }),
            }
        }
        Err(last.unwrap_or_else(|| Failure::NoAddress { host: host.to_string() }))
    }
}

/// Bytes of a reply as escaped text, cut at [`SHOWN`] characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(SHOWN).flat_map(char::escape_debug).collect();
    if text.chars().count() > SHOWN {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_show_replies_escaped_and_cut() {
        assert_eq!(shown(b"+PONG\r\n"), "+PONG\\r\\n");
        assert_eq!(shown(&[b'a'; 100]), format!("{}…", "a".repeat(SHOWN)));
        assert_eq!(shown(&[0xff, b'x']), "\u{fffd}x");
    }

    #[test]
    fn failures_have_their_kinds() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let io = |k| std::io::Error::from(k);
        let cases = [
            (
                Failure::Connect {
                    addr,
                    source: io(std::io::ErrorKind::ConnectionRefused),
                },
                ErrorKind::Refused,
            ),
            (
                Failure::Receive {
                    addr,
                    source: io(std::io::ErrorKind::ConnectionReset),
                },
                ErrorKind::Reset,
            ),
            (
                Failure::Resolve {
                    host: "x".into(),
                    source: io(std::io::ErrorKind::Other),
                },
                ErrorKind::Dns,
            ),
            (Failure::NoAddress { host: "x".into() }, ErrorKind::Dns),
            (Failure::NoReply { addr }, ErrorKind::Protocol),
            (
                Failure::Mismatch {
                    addr,
                    got: "-ERR".into(),
                    want: "+PONG".into(),
                },
                ErrorKind::Protocol,
            ),
        ];
        for (f, kind) in cases {
            assert_eq!(f.kind(), kind, "{f}");
        }
    }
}
