//! What a SQL round does: its targets (a PostgreSQL or MySQL/MariaDB server and database),
//! the query each attempt runs, where the credentials come from, and TLS.

use serde::Serialize;

use crate::plan::{Expect, Tls};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SqlPlan {
    pub targets: Vec<SqlTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SqlTarget {
    pub name: String,
    /// The URL as written: `postgres://HOST[:PORT][/DATABASE]`, `mysql://…`.
    pub url: String,
    pub engine: Engine,
    /// A DNS name or an IP address (IPv6 without its brackets).
    pub host: String,
    pub port: u16,
    /// The database to connect to; the server's default for the user when absent.
    pub database: Option<String>,
    /// Run as one simple query (text protocol) on every attempt.
    pub query: String,
    pub credentials: Credentials,
    /// TLS when the task asks for it (`tls:`); plain TCP otherwise.
    pub tls: Option<Tls>,
    pub expect: Expect,
}

/// Which server protocol a target speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }
}

/// The user name and password: keys of a Secret mounted in the pod (never in the task).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub secret: String,
    pub username_key: String,
    pub password_key: String,
}

/// The answer code of an attempt whose query the server answered.
pub const QUERIED: u16 = 0;

/// The query an attempt runs when the target names none.
pub const DEFAULT_QUERY: &str = "SELECT 1";

/// An answer code's name in reports and expectations.
pub fn code_name(code: u16) -> String {
    match code {
        QUERIED => "queried".into(),
        c => format!("code{c}"),
    }
}
