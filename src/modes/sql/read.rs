//! Reading a native `SqlCheck`'s targets (URL, query, credentials, TLS); the rest of its
//! spec is the skeleton `plan::native` plans.
//!
//! A URL names the server and database only: `postgres://HOST[:PORT][/DATABASE]` (also
//! `postgresql://`), `mysql://…` (also `mariadb://`). A user or password in it is refused:
//! credentials come from a Secret (`credentials`), so the task never holds them in clear.

use std::path::Path;

use super::plan::*;
use crate::modes::Mode;
use crate::modes::tcp::read::parse_address;
use crate::plan::native::{ExpectSpec, expect, tls};
use crate::plan::{CodeKind, CodeRange};
use crate::task::k8s::NameRule;
use crate::task::read::{Cx, Fields, field_name, target_list, target_name};

/// What `url` allows, in every message about it.
pub const URL_ALLOWED: &str = "postgres://HOST[:PORT][/DATABASE] (or postgresql://), mysql://HOST[:PORT][/DATABASE] (or mariadb://), port 1–65535 (default 5432, 3306); credentials in `credentials: {secret: NAME}`";

/// The URL schemes and the engine each speaks.
const SCHEMES: &[(&str, Engine)] = &[
    ("postgres", Engine::Postgres),
    ("postgresql", Engine::Postgres),
    ("mysql", Engine::Mysql),
    ("mariadb", Engine::Mysql),
];

/// A target's URL, taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct SqlUrl {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
}

/// Why a URL cannot name a SQL server.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` has no scheme")]
    NoScheme(String),
    #[error("unknown scheme `{0}`")]
    Scheme(String),
    #[error("the URL holds a password: credentials come from a Secret (`credentials: {{secret: NAME}}`), never from the task")]
    Password,
    #[error("the URL holds a user name (`{0}@`): credentials come from a Secret (`credentials: {{secret: NAME}}`)")]
    User(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("{0}")]
    Address(String),
    #[error("the database name `{0}` has `/`, `#` or a space")]
    Database(String),
    #[error("URL parameters (`?{0}`) are not read: TLS is the target's `tls`, credentials its `credentials`")]
    Parameters(String),
}

/// `SCHEME://HOST[:PORT][/DATABASE]` taken apart. Pure.
pub fn parse_url(text: &str) -> Result<SqlUrl, UrlError> {
    let s = text.trim();
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(UrlError::NoScheme(s.into()));
    };
    let lower = scheme.to_ascii_lowercase();
    let Some(&(_, engine)) = SCHEMES.iter().find(|(n, _)| *n == lower) else {
        return Err(UrlError::Scheme(scheme.into()));
    };
    let (rest, params) = match rest.split_once('?') {
        Some((r, p)) => (r, Some(p)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    if let Some((user, _)) = authority.rsplit_once('@') {
        return Err(if user.contains(':') {
            UrlError::Password
        } else {
            UrlError::User(user.into())
        });
    }
    if let Some(p) = params {
        return Err(UrlError::Parameters(p.into()));
    }
    if authority.is_empty() {
        return Err(UrlError::NoHost(s.into()));
    }
    // a port when the authority ends in `:PORT` (`[v6]:PORT` or `host:PORT`)
    let has_port = match authority.strip_prefix('[') {
        Some(inside) => inside.split_once(']').is_some_and(|(_, after)| !after.is_empty()),
        None => authority.contains(':'),
    };
    let address = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", engine.default_port())
    };
    let (host, port) = parse_address(&address).map_err(|e| UrlError::Address(e.to_string()))?;
    let database = match path {
        None | Some("") => None,
        Some(d) if d.contains(['/', '#', ' ']) => return Err(UrlError::Database(d.into())),
        Some(d) => Some(d.to_string()),
    };
    Ok(SqlUrl {
        engine,
        host,
        port,
        database,
    })
}

/// Reads and plans a native `SqlCheck`'s targets over the round's expectations.
pub(crate) fn sql_targets(cx: &mut Cx, n: &crate::task::yaml::Node, path: &str, base: &ExpectSpec, task_dir: &Path) -> Option<Mode> {
    let targets = target_list(cx, n, path, |t: &SqlTarget| &t.name, |cx, f, _| sql_target(cx, f, base, task_dir))?;
    Some(Mode::Sql(SqlPlan { targets }))
}

fn sql_target(cx: &mut Cx, f: &mut Fields, base: &ExpectSpec, task_dir: &Path) -> Option<SqlTarget> {
    let before = cx.diags.error_count();
    let name = target_name(cx, f);
    let url = f.required(cx, "url").and_then(|n| {
        let path = f.path_of("url");
        let text = cx.string(n, &path)?;
        match parse_url(&text) {
            Ok(u) => Some((text, u)),
            Err(e) => {
                let d = cx.diags.error(n.pos, &path, e.to_string());
                if let UrlError::Scheme(s) = &e {
                    d.suggest(crate::diag::did_you_mean(s, SCHEMES.iter().map(|(n, _)| *n)));
                }
                d.allowed(URL_ALLOWED);
                None
            }
        }
    });
    let query = match f.get("query") {
        None => Some(DEFAULT_QUERY.to_string()),
        Some(n) => {
            let path = f.path_of("query");
            cx.scalar_string(n, &path).and_then(|q| {
                if q.trim().is_empty() {
                    cx.diags
                        .error(n.pos, &path, "the query is empty")
                        .allowed("an SQL statement, e.g. SELECT 1 (the default)");
                    None
                } else {
                    Some(q)
                }
            })
        }
    };
    let credentials = f.required(cx, "credentials").and_then(|n| {
        let mut c = cx.fields(n, &f.path_of("credentials"))?;
        let secret = c
            .required(cx, "secret")
            .and_then(|n| crate::task::read::named(cx, n, &c.path_of("secret"), NameRule::Object));
        let username_key = field_name(cx, &mut c, "usernameKey", NameRule::Key).unwrap_or_else(|| "username".into());
        let password_key = field_name(cx, &mut c, "passwordKey", NameRule::Key).unwrap_or_else(|| "password".into());
        c.finish(cx);
        Some(Credentials {
            secret: secret?,
            username_key,
            password_key,
        })
    });
    let tls = f.map(cx, "tls").map(|mut t| tls(cx, &mut t, task_dir));
    let own = f
        .map(cx, "expect")
        .map(|mut e| expect(cx, &mut e, sql_expect))
        .unwrap_or_default();
    f.finish(cx);
    if cx.diags.error_count() > before {
        return None;
    }
    let (url, u) = url?;
    let mut expect = own.over(base).resolve(CodeKind::Sql);
    expect.codes = vec![CodeRange {
        from: QUERIED,
        to: QUERIED,
    }];
    Some(SqlTarget {
        name: name.unwrap_or_else(|| url.clone()),
        url,
        engine: u.engine,
        host: u.host,
        port: u.port,
        database: u.database,
        query: query?,
        credentials: credentials?,
        tls,
        expect,
    })
}

/// A SqlCheck's own expectation fields: none (every answered query is a success).
pub(crate) fn sql_expect(_: &mut Cx, _: &mut Fields, _: &mut ExpectSpec) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_engine_host_port_and_database() {
        let ok = |s: &str| parse_url(s).unwrap();
        let u = ok("postgres://db.example:5433/app");
        assert_eq!(
            u,
            SqlUrl {
                engine: Engine::Postgres,
                host: "db.example".into(),
                port: 5433,
                database: Some("app".into())
            }
        );
        assert_eq!(ok("postgresql://db").port, 5432);
        assert_eq!(ok("mysql://db/").database, None);
        assert_eq!(ok("mariadb://[::1]/x").port, 3306);
        assert_eq!(ok("mariadb://[::1]/x").host, "::1");
        assert_eq!(ok("MySQL://10.0.0.1:3307").engine, Engine::Mysql);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        use UrlError as E;
        assert_eq!(parse_url("db:5432"), Err(E::NoScheme("db:5432".into())));
        assert_eq!(parse_url("redis://db"), Err(E::Scheme("redis".into())));
        assert_eq!(parse_url("postgres://u:pw@db/app"), Err(E::Password));
        assert_eq!(parse_url("postgres://u@db/app"), Err(E::User("u".into())));
        assert_eq!(parse_url("postgres:///app"), Err(E::NoHost("postgres:///app".into())));
        assert_eq!(parse_url("postgres://db:70000"), Err(E::Address("port 70000 is out of range".into())));
        assert_eq!(parse_url("postgres://db:0"), Err(E::Address("port 0 is out of range".into())));
        assert_eq!(parse_url("postgres://db/a/b"), Err(E::Database("a/b".into())));
        assert_eq!(
            parse_url("postgres://db/a?sslmode=require"),
            Err(E::Parameters("sslmode=require".into()))
        );
        // the password never shows in the message
        assert!(!E::Password.to_string().contains("pw"));
    }
}
