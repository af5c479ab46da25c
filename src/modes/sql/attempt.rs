//! The SQL mode's attempt: one simple query on a pooled connection, or on a connection of
//! its own (connect, log in, query, close).
//!
//! The pool is a stack of idle connections, at most `maxInFlight` (the engine never runs
//! more attempts at once): an attempt takes one or opens one, and gives it back when the
//! query was answered, an error answer included; a connection that broke is dropped, and
//! the next attempt opens another. Every step runs under the task's timeout, which the
//! engine applies around each attempt; a connection whose query the timeout cut is
//! dropped, not reused, and PostgreSQL is asked to cancel that query (MySQL runs it to its
//! end).
//!
//! The password lives only in the clients' connection settings: error samples redact it,
//! and no message here is built from the settings.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rustls::pki_types::ServerName;

use super::pg;
use super::plan::{Credentials, Engine, QUERIED, SqlTarget};
use crate::plan::{Pressure, Tls};
use crate::pressure::{Attempt, ErrorKind, ErrorSamples, Outcome};
use crate::probe::{Mounts, SetupError, io_kind, read_file};

pub struct SqlAttempt {
    samples: ErrorSamples,
    client: Client,
    query: String,
    /// Keep connections between attempts.
    pool: bool,
    /// The most idle connections kept.
    max_idle: usize,
    /// Where the target is, for messages: `HOST:PORT`.
    server: String,
    /// The engine's bound on each attempt, which also bounds a cancel request.
    timeout: Duration,
}

enum Client {
    /// PostgreSQL: the lean client ([`super::pg`]).
    Postgres {
        target: Box<PgTarget>,
        idle: Mutex<Vec<pg::PgConn>>,
    },
    Mysql {
        opts: mysql_async::Opts,
        idle: Mutex<Vec<mysql_async::Conn>>,
    },
}

/// Where and who, for the PostgreSQL client, TLS, and the query's message.
#[derive(Clone)]
struct PgTarget {
    host: Arc<str>,
    port: u16,
    user: String,
    password: String,
    database: Option<String>,
    tls: Option<pg::Tls>,
    message: Box<[u8]>,
}

/// Why an attempt failed, sorted into the engine's kinds; `message` is the sample.
struct Failure {
    kind: ErrorKind,
    message: String,
}

impl SqlAttempt {
    /// A target's attempt: credentials read from their Secret, TLS set up. Fails (the round
    /// cannot run) when a key is missing or TLS material is bad.
    pub fn build(t: &SqlTarget, pool: bool, p: &Pressure, mounts: &Mounts) -> Result<Self, SetupError> {
        let (user, password) = credentials(&t.credentials, mounts)?;
        let server = if t.host.contains(':') {
            format!("[{}]:{}", t.host, t.port)
        } else {
            format!("{}:{}", t.host, t.port)
        };
        let client = match t.engine {
            Engine::Postgres => {
                let tls = match &t.tls {
                    None => None,
                    Some(tls) => {
                        let cfg = crate::probe::client::client_tls(tls, Vec::new(), mounts)?;
                        let name = tls.server_name.clone().unwrap_or_else(|| t.host.clone());
                        Some(pg::Tls {
                            config: Arc::new(cfg),
                            name: ServerName::try_from(name)
                                .map_err(|e| SetupError::Tls(format!("TLS server name: {e}")))?,
                        })
                    }
                };
                Client::Postgres {
                    target: Box::new(PgTarget {
                        host: t.host.as_str().into(),
                        port: t.port,
                        user: user.clone(),
                        password: password.clone(),
                        database: t.database.clone(),
                        tls,
                        message: pg::query_message(&t.query)
                            .map_err(|e| SetupError::Invalid(format!("query: {e}")))?
                            .into(),
                    }),
                    idle: Mutex::new(Vec::new()),
                }
            }
            Engine::Mysql => {
                let mut b = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(t.host.clone())
                    .tcp_port(t.port)
                    .user(Some(user.clone()))
                    .pass(Some(password.clone()))
                    .db_name(t.database.clone())
                    .prefer_socket(false)
                    .tcp_nodelay(true)
                    .stmt_cache_size(0)
                    // known settings spare a query after every login
                    .max_allowed_packet(Some(16 * 1024 * 1024))
                    .wait_timeout(Some(28_800));
                if let Some(tls) = &t.tls {
                    b = b.ssl_opts(mysql_tls(tls, mounts)?);
                }
                Client::Mysql {
                    opts: b.into(),
                    idle: Mutex::new(Vec::new()),
                }
            }
        };
        Ok(SqlAttempt {
            samples: ErrorSamples::redacting(vec![password]),
            client,
            query: t.query.clone(),
            pool,
            max_idle: p.max_in_flight.max(1) as usize,
            server,
            timeout: p.timeout,
        })
    }

    async fn postgres(&self, l: &PgTarget, idle: &Mutex<Vec<pg::PgConn>>, step: &mut Step) -> Result<(), Failure> {
        let pooled = if self.pool { take(idle) } else { None };
        let mut conn = match pooled {
            Some(c) => c,
            None => pg::PgConn::connect(&pg::Login {
                host: &l.host,
                port: l.port,
                user: &l.user,
                password: &l.password,
                database: l.database.as_deref(),
                tls: l.tls.as_ref(),
            })
            .await
            .map_err(|e| self.pg_failure(&e, CONNECT))?,
        };
        let mut cut = Cancel {
            host: &l.host,
            port: l.port,
            key: conn.key,
            timeout: self.timeout,
            done: false,
        };
        *step = Step::Query;
        let result = conn.query(&l.message).await;
        cut.done = true;
        drop(cut);
        let f = match result {
            Ok(()) => None,
            Err(e) => Some(self.pg_failure(&e, "query")),
        };
        // a server's error answer leaves the connection ready for the next query
        let usable = f.as_ref().is_none_or(|f| f.kind == ErrorKind::Query);
        if self.pool && usable {
            give_back(idle, conn, self.max_idle);
        } else if usable {
            conn.terminate().await;
        }
        f.map_or(Ok(()), Err)
    }

    fn pg_failure(&self, e: &pg::PgError, step: &str) -> Failure {
        let kind = match e {
            pg::PgError::Io(io) => match io_kind(io) {
                ErrorKind::Other => chain_kind(io, &io.to_string()),
                k => k,
            },
            pg::PgError::Closed => ErrorKind::Reset,
            pg::PgError::Server { code, .. } => postgres_kind(code, step == CONNECT),
            pg::PgError::Protocol(_) => ErrorKind::Protocol,
            pg::PgError::NoTls => ErrorKind::Tls,
        };
        Failure {
            kind,
            message: format!("{}: {step}: {e}", self.server),
        }
    }

    async fn mysql(
        &self,
        opts: &mysql_async::Opts,
        idle: &Mutex<Vec<mysql_async::Conn>>,
        step: &mut Step,
    ) -> Result<(), Failure> {
        let pooled = if self.pool { take(idle) } else { None };
        let mut conn = match pooled {
            Some(c) => c,
            None => mysql_async::Conn::new(opts.clone())
                .await
                .map_err(|e| self.my_failure(&e, CONNECT))?,
        };
        *step = Step::Query;
        let result = conn.query_drop(self.query.as_str()).await;
        let usable = match &result {
            Ok(()) => true,
            Err(e) => !e.is_fatal(),
        };
        if self.pool && usable {
            give_back(idle, conn, self.max_idle);
        } else if usable {
            // a fresh connection says goodbye (COM_QUIT) before it closes
            let _ = conn.disconnect().await;
        }
        result.map_err(|e| self.my_failure(&e, "query"))
    }

    fn my_failure(&self, e: &mysql_async::Error, step: &str) -> Failure {
        use mysql_async::{DriverError, Error as E, IoError};
        let server = &self.server;
        let text = crate::probe::client::error_text(e);
        let kind = match e {
            // access denied (for the user, to the database), plugin refusals
            E::Server(s) => mysql_kind(s.code, step == CONNECT),
            E::Io(IoError::Io(io)) => match io_kind(io) {
                ErrorKind::Other => chain_kind(e, &text),
                k => k,
            },
            E::Io(IoError::Tls(_)) => ErrorKind::Tls,
            E::Driver(DriverError::ConnectionClosed) => ErrorKind::Reset,
            _ => chain_kind(e, &text),
        };
        Failure {
            kind,
            message: format!("{server}: {step}: {text}"),
        }
    }
}

impl Attempt for SqlAttempt {
    async fn attempt(&self) -> Outcome {
        let mut guard = Unfinished {
            attempt: self,
            step: Step::Connect,
            done: false,
        };
        // The engine bounds every attempt by the task's timeout: when it fires, this future
        // is dropped unfinished and the guard notes the sample naming the step it cut.
        let result = match &self.client {
            Client::Postgres { target, idle } => self.postgres(target, idle, &mut guard.step).await,
            Client::Mysql { opts, idle } => Box::pin(self.mysql(opts, idle, &mut guard.step)).await,
        };
        guard.done = true;
        match result {
            Ok(()) => Outcome::Answered(QUERIED),
            Err(f) => {
                self.samples.note(f.kind, || f.message);
                Outcome::Failed(f.kind)
            }
        }
    }

    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        self.samples.all()
    }

    /// The same target with a pool of its own: a thread keeps its connections, as
    /// `pgbench -j` does.
    fn lane(&self) -> Option<Self> {
        let client = match &self.client {
            Client::Postgres { target, .. } => Client::Postgres {
                target: target.clone(),
                idle: Mutex::new(Vec::new()),
            },
            Client::Mysql { opts, .. } => Client::Mysql {
                opts: opts.clone(),
                idle: Mutex::new(Vec::new()),
            },
        };
        Some(SqlAttempt {
            samples: ErrorSamples::redacting(self.samples.secrets().to_vec()),
            client,
            query: self.query.clone(),
            pool: self.pool,
            max_idle: self.max_idle,
            server: self.server.clone(),
            timeout: self.timeout,
        })
    }
}

/// Where an attempt is, for the sample of a timeout.
#[derive(Clone, Copy)]
enum Step {
    Connect,
    Query,
}

/// Notes a timeout sample naming the step when an attempt is dropped before it finished.
struct Unfinished<'a> {
    attempt: &'a SqlAttempt,
    step: Step,
    done: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let a = self.attempt;
        let t = crate::duration::format_duration(a.timeout);
        a.samples.note(ErrorKind::Timeout, || match self.step {
            Step::Connect => format!("{}: connect: no connection and login within {t}", a.server),
            Step::Query => format!("{}: query: no answer within {t}", a.server),
        });
    }
}

/// The step of an attempt that opens a connection (and logs in), in messages.
const CONNECT: &str = "connect";

/// The kind of a PostgreSQL error answer (its SQLSTATE), while connecting or to the query.
fn postgres_kind(sqlstate: &str, connecting: bool) -> ErrorKind {
    match sqlstate {
        // invalid_authorization_specification, invalid_password
        c if c.starts_with("28") => ErrorKind::Auth,
        // any other refusal to connect: too many clients, no such database, starting up
        _ if connecting => ErrorKind::Refused,
        // admin_shutdown (pg_terminate_backend), crash_shutdown
        "57P01" | "57P02" => ErrorKind::Reset,
        _ => ErrorKind::Query,
    }
}

/// The kind of a MySQL error answer (its code), while connecting or to the query.
fn mysql_kind(code: u16, connecting: bool) -> ErrorKind {
    match code {
        // access denied (for the user, to the database), authentication plugin refusals
        1044 | 1045 | 1251 | 1698 => ErrorKind::Auth,
        // too many connections, no such database, host blocked, …
        _ if connecting => ErrorKind::Refused,
        _ => ErrorKind::Query,
    }
}

/// Asks PostgreSQL to cancel the query of an attempt the timeout cut (dropped before the
/// answer): the server would otherwise run it to its end (a `pg_sleep(3600)` for an hour),
/// holding its backend. The request names the backend's key, on a connection and a task of
/// its own, bounded by the timeout.
struct Cancel<'a> {
    host: &'a Arc<str>,
    port: u16,
    key: Option<(i32, i32)>,
    timeout: Duration,
    done: bool,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        let (false, Some(key)) = (self.done, self.key) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (host, port, timeout) = (self.host.clone(), self.port, self.timeout);
        rt.spawn(async move {
            let _ = tokio::time::timeout(timeout, pg::cancel(&host, port, key)).await;
        });
    }
}

/// An idle connection, when there is one.
fn take<C>(idle: &Mutex<Vec<C>>) -> Option<C> {
    idle.lock().unwrap_or_else(PoisonError::into_inner).pop()
}

/// Keeps a connection for a later attempt, unless `max` are idle already.
fn give_back<C>(idle: &Mutex<Vec<C>>, c: C, max: usize) {
    let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
    if idle.len() < max {
        idle.push(c);
    }
}

/// The kind of an error from its causes: an I/O error's kind, TLS, a name that did not
/// resolve, else `Other`.
fn chain_kind(e: &(dyn std::error::Error + 'static), text: &str) -> ErrorKind {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<rustls::Error>() {
            return ErrorKind::Tls;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io_kind(io) {
                ErrorKind::Other => {}
                k => return k,
            }
        }
        src = s.source();
    }
    let t = text.to_ascii_lowercase();
    if t.contains("timed out") || t.contains("timeout") {
        ErrorKind::Timeout
    } else if t.contains("lookup") || t.contains("name or service not known") || t.contains("resolve") {
        ErrorKind::Dns
    } else if t.contains("certificate") || t.contains("tls") || t.contains("ssl") {
        ErrorKind::Tls
    } else if t.contains("connection closed") || t.contains("connection reset") || t.contains("broken pipe") {
        ErrorKind::Reset
    } else {
        ErrorKind::Other
    }
}

/// The user name and password from their Secret's keys (a trailing newline dropped, as a
/// file written by hand has one).
fn credentials(c: &Credentials, mounts: &Mounts) -> Result<(String, String), SetupError> {
    let dir = mounts.secret_dir(&c.secret)?;
    let read = |key: &str, what: &str| -> Result<String, SetupError> {
        let path = Mounts::key(&dir, key)?;
        let raw = read_file(&path, &format!("the {what} (key `{key}` of Secret {})", c.secret))?;
        String::from_utf8(raw)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|_| SetupError::Invalid(format!("key `{key}` of Secret {} is not UTF-8", c.secret)))
    };
    Ok((read(&c.username_key, "user name")?, read(&c.password_key, "password")?))
}

/// MySQL's TLS settings: the CA (a file beside the task, or `ca.crt` of the Secret), or the
/// system's roots; a client certificate is not supported.
fn mysql_tls(tls: &Tls, mounts: &Mounts) -> Result<mysql_async::SslOpts, SetupError> {
    if tls.cert.is_some() {
        return Err(SetupError::Tls("a client certificate is not supported for MySQL targets".into()));
    }
    let mut ca = tls.ca.as_ref().map(|f| read_file(&f.path, "CA file")).transpose()?;
    if let Some(secret) = &tls.secret {
        let dir = crate::probe::client::tls_secret_dir(mounts, secret)?;
        ca = std::fs::read(dir.join("ca.crt")).ok();
    }
    let mut o = mysql_async::SslOpts::default().with_danger_accept_invalid_certs(tls.insecure_skip_verify);
    if let Some(pem) = ca {
        o = o.with_root_certs(vec![pem.into()]);
    }
    if let Some(name) = &tls.server_name {
        o = o.with_danger_tls_hostname_override(Some(name.clone()));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let idle = Mutex::new(Vec::new());
        for i in 0..5 {
            give_back(&idle, i, 3);
        }
        assert_eq!(take(&idle), Some(2));
        assert_eq!(idle.lock().unwrap().len(), 2);
    }

    #[test]
    fn server_answers_give_the_kind() {
        assert_eq!(postgres_kind("28P01", true), ErrorKind::Auth);
        assert_eq!(postgres_kind("28000", true), ErrorKind::Auth);
        assert_eq!(postgres_kind("53300", true), ErrorKind::Refused);
        assert_eq!(postgres_kind("3D000", true), ErrorKind::Refused);
        assert_eq!(postgres_kind("57P01", false), ErrorKind::Reset);
        assert_eq!(postgres_kind("42601", false), ErrorKind::Query);
        assert_eq!(postgres_kind("57014", false), ErrorKind::Query);
        assert_eq!(mysql_kind(1045, true), ErrorKind::Auth);
        assert_eq!(mysql_kind(1040, true), ErrorKind::Refused);
        assert_eq!(mysql_kind(1064, false), ErrorKind::Query);
    }

    #[test]
    fn io_causes_give_the_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(chain_kind(&e, "connection refused"), ErrorKind::Refused);
        let e = std::io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(chain_kind(&e, &e.to_string()), ErrorKind::Dns);
    }
}
