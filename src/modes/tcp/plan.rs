//! What a TCP round does: its targets (a host and port), the optional payload written after
//! connecting, and what the reply must start with.

use serde::Serialize;

use crate::plan::Expect;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TcpPlan {
    pub targets: Vec<TcpTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TcpTarget {
    pub name: String,
    /// The address as written: `HOST:PORT`, `[IPv6]:PORT`.
    pub address: String,
    /// A DNS name or an IP address (IPv6 without its brackets), looked up on every attempt
    /// when it is a name.
    pub host: String,
    pub port: u16,
    /// Written once connected.
    pub send: Option<String>,
    /// What the attempt waits for after connecting (and writing `send`).
    pub reply: Reply,
    /// How the attempt's connection ends.
    pub close: Close,
    pub expect: Expect,
}

/// What an attempt waits for once connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply {
    /// Nothing: connecting is the whole attempt.
    None,
    /// Any reply: its first bytes (`send` without `expect`).
    Any,
    /// A reply that starts with these bytes.
    Prefix(String),
}

/// How an attempt ends its connection once it is judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Close {
    /// A reset (SO_LINGER 0), as kubelet's probes and HAProxy's checks close: no TIME_WAIT
    /// on either side. A graceful close leaves one per connection for a minute, on the
    /// prober when it closes first (a connect-only check at 500/s uses up its ~28,000
    /// ephemeral ports to one destination) or on the target when the target closes first
    /// (its next SYN from the same port must first recycle it).
    #[default]
    Reset,
    /// FIN, the orderly close, for a target that logs every reset.
    Graceful,
}

impl Close {
    pub const NAMES: &[&str] = &["reset", "graceful"];
}

/// The answer code of an attempt that connected (and asked for nothing more).
pub const CONNECTED: u16 = 0;
/// The answer code of an attempt whose reply came (and started as expected).
pub const REPLIED: u16 = 1;

/// The longest `send` payload.
pub const MAX_SEND: usize = 64 * 1024;
/// The longest expected reply prefix: an attempt reads at most this much.
pub const MAX_PREFIX: usize = 1024;

/// An answer code's name in reports and expectations.
pub fn code_name(code: u16) -> String {
    match code {
        CONNECTED => "connected".into(),
        REPLIED => "replied".into(),
        c => format!("code{c}"),
    }
}
