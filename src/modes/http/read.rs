//! Reading a native `HttpCheck`'s targets (URL, method, headers, body, TLS, version,
//! redirects); the rest of its spec is the skeleton `plan::native` plans.

use std::path::Path;

use super::plan::*;
use crate::diag::Pos;
use crate::modes::Mode;
use crate::plan::native::{ExpectSpec, expect, tls};
use crate::plan::{CodeKind, CodeRange};
use crate::task::k8s::NameRule;
use crate::task::read::{Cx, Fields, file_ref, join, named, target_list, target_name, url};
use crate::task::yaml::{Node, Value};

/// Reads and plans a native `HttpCheck`'s targets over the round's expectations.
pub(crate) fn http_targets(cx: &mut Cx, n: &Node, path: &str, base: &ExpectSpec, task_dir: &Path) -> Option<Mode> {
    let targets = target_list(
        cx,
        n,
        path,
        |t: &HttpTarget| &t.name,
        |cx, f, i| http_target(cx, f, i, base, task_dir),
    )?;
    Some(Mode::Http(HttpPlan { targets }))
}

fn http_target(cx: &mut Cx, f: &mut Fields, index: usize, base: &ExpectSpec, task_dir: &Path) -> Option<HttpTarget> {
    let before = cx.diags.error_count();
    let name = target_name(cx, f);
    let url = f.required(cx, "url").and_then(|n| url(cx, n, &f.path_of("url")));
    let method = f.one_of(cx, "method", METHODS).unwrap_or("GET").to_string();
    let headers = f
        .get("headers")
        .map(|n| headers(cx, n, &f.path_of("headers")))
        .unwrap_or_default();
    let body = body(cx, f, task_dir);
    let tls = f
        .map(cx, "tls")
        .map(|mut t| tls(cx, &mut t, task_dir))
        .unwrap_or_default();
    if let Some(u) = &url
        && !u.starts_with("https://")
        && f.get("tls").is_some()
    {
        cx.diags
            .error(
                f.pos_of("tls"),
                &f.path_of("tls"),
                "TLS settings on a plain http:// URL",
            )
            .allowed("https:// URLs");
    }
    let version = match f.one_of(cx, "http", &["auto", "1.1", "2"]) {
        Some("1.1") => HttpVersion::Http1,
        Some("2") => HttpVersion::Http2,
        _ => HttpVersion::Auto,
    };
    let redirects = match f.get("followRedirects") {
        None => 0,
        Some(n) => match &n.value {
            Value::Bool(b) => {
                if *b {
                    10
                } else {
                    0
                }
            }
            Value::Int(i) if (0..=50).contains(i) => *i as u32,
            _ => {
                cx.diags
                    .error(n.pos, &f.path_of("followRedirects"), "not a redirect limit")
                    .allowed("true (up to 10), false, or 0–50");
                0
            }
        },
    };
    let expect = f
        .map(cx, "expect")
        .map(|mut e| expect(cx, &mut e, http_expect))
        .unwrap_or_default()
        .over(base)
        .resolve(CodeKind::Http);
    f.finish(cx);
    if cx.diags.error_count() > before {
        return None;
    }
    let url = url?;
    let name = name.unwrap_or_else(|| {
        if index == 0 {
            url.clone()
        } else {
            format!("{url}#{index}")
        }
    });
    Some(HttpTarget {
        name,
        url,
        method,
        headers,
        body,
        tls,
        version,
        redirects,
        expect,
    })
}

/// Headers as a mapping (`Name: value` or `Name: {secret: s, key: k}`) or kdoctor's list of `"Name: value"`.
pub(crate) fn headers(cx: &mut Cx, n: &Node, path: &str) -> Vec<Header> {
    let mut out = Vec::new();
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let hpath = join(path, &k.name);
                if !valid_header_name(&k.name) {
                    cx.diags
                        .error(k.pos, &hpath, format!("`{}` is not a valid header name", k.name))
                        .allowed("letters, digits and !#$%&'*+-.^_`|~");
                    continue;
                }
                let value = match &v.value {
                    Value::Map(_) => {
                        let Some(mut f) = cx.fields(v, &hpath) else {
                            continue;
                        };
                        let secret = f
                            .required(cx, "secret")
                            .and_then(|n| named(cx, n, &join(&hpath, "secret"), NameRule::Object));
                        let key = f
                            .required(cx, "key")
                            .and_then(|n| named(cx, n, &join(&hpath, "key"), NameRule::Key));
                        f.finish(cx);
                        match (secret, key) {
                            (Some(name), Some(key)) => HeaderValue::Secret { name, key },
                            _ => continue,
                        }
                    }
                    _ => {
                        let Some(s) = cx.scalar_string(v, &hpath) else {
                            continue;
                        };
                        if !valid_header_value(&s) {
                            cx.diags.error(v.pos, &hpath, "header value has control characters");
                            continue;
                        }
                        HeaderValue::Inline(s)
                    }
                };
                out.push(Header {
                    name: k.name.clone(),
                    value,
                });
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let hpath = format!("{path}[{i}]");
                let Some(s) = cx.string(item, &hpath) else {
                    continue;
                };
                if let Some(h) = header_line(cx, &s, item.pos, &hpath) {
                    out.push(h);
                }
            }
        }
        _ => {
            cx.diags
                .error(
                    n.pos,
                    path,
                    format!("expected a mapping of headers, found {}", n.type_name()),
                )
                .allowed("`Name: value` entries, or a list of \"Name: value\" strings");
        }
    }
    out
}

/// One `"Name: value"` line.
pub(crate) fn header_line(cx: &mut Cx, s: &str, pos: Pos, path: &str) -> Option<Header> {
    let Some((name, value)) = s.split_once(':') else {
        cx.diags
            .error(pos, path, format!("header `{s}` has no colon"))
            .allowed("\"Name: value\"");
        return None;
    };
    let name = name.trim();
    if !valid_header_name(name) {
        cx.diags
            .error(pos, path, format!("`{name}` is not a valid header name"))
            .allowed("letters, digits and !#$%&'*+-.^_`|~");
        return None;
    }
    let value = value.trim();
    if !valid_header_value(value) {
        cx.diags.error(pos, path, "header value has control characters");
        return None;
    }
    Some(Header {
        name: name.to_string(),
        value: HeaderValue::Inline(value.to_string()),
    })
}

fn valid_header_name(s: &str) -> bool {
    reqwest::header::HeaderName::from_bytes(s.as_bytes()).is_ok()
}

fn valid_header_value(s: &str) -> bool {
    reqwest::header::HeaderValue::from_str(s).is_ok()
}

fn body(cx: &mut Cx, f: &mut Fields, task_dir: &Path) -> Body {
    let inline = f.str(cx, "body");
    let file = f
        .get("bodyFile")
        .and_then(|n| file_ref(cx, n, &f.path_of("bodyFile"), task_dir));
    let from = f.map(cx, "bodyFrom").and_then(|mut b| {
        let name = b
            .required(cx, "configMap")
            .and_then(|n| named(cx, n, &b.path_of("configMap"), NameRule::Object));
        let key = b
            .required(cx, "key")
            .and_then(|n| named(cx, n, &b.path_of("key"), NameRule::Key));
        b.finish(cx);
        Some(Body::ConfigMapKey { name: name?, key: key? })
    });
    let given = usize::from(f.has("body")) + usize::from(f.has("bodyFile")) + usize::from(f.has("bodyFrom"));
    if given > 1 {
        cx.diags
            .error(f.pos, &f.path, "`body`, `bodyFile` and `bodyFrom` exclude each other")
            .allowed("one of body, bodyFile, bodyFrom");
    }
    inline
        .map(Body::Inline)
        .or(file.map(Body::File))
        .or(from)
        .unwrap_or(Body::None)
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// An HttpCheck's own expectations: `status`, the statuses that count as success.
pub(crate) fn http_expect(cx: &mut Cx, f: &mut Fields, e: &mut ExpectSpec) {
    if let Some(items) = f.list(cx, "status") {
        let path = f.path_of("status");
        if items.is_empty() {
            cx.diags
                .error(
                    f.pos_of("status"),
                    &path,
                    "an empty list would count every status, 503 too, as a success",
                )
                .allowed("the statuses that count as success, e.g. [200] or [2xx]; leave `status` out for 2xx and 3xx");
        }
        let mut codes = Vec::new();
        for (i, n) in items.iter().enumerate() {
            if let Some(c) = code_range(cx, n, &format!("{path}[{i}]")) {
                codes.push(c);
            }
        }
        e.codes = Some(codes);
    }
}

fn code_range(cx: &mut Cx, n: &Node, path: &str) -> Option<CodeRange> {
    const ALLOWED: &str = "a status code 100–599, a class such as 2xx, or a range such as 200-204";
    let parsed = match &n.value {
        Value::Int(c) => u16::try_from(*c).ok().map(|c| CodeRange { from: c, to: c }),
        Value::Str(s) => {
            let s = s.trim();
            if let Some(class) = s
                .strip_suffix("xx")
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (1..=5).contains(c))
            {
                Some(CodeRange {
                    from: class * 100,
                    to: class * 100 + 99,
                })
            } else if let Some((a, b)) = s.split_once('-') {
                match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    (Ok(a), Ok(b)) if a <= b => Some(CodeRange { from: a, to: b }),
                    _ => None,
                }
            } else {
                s.parse::<u16>().ok().map(|c| CodeRange { from: c, to: c })
            }
        }
        _ => None,
    };
    match parsed {
        Some(r) if r.from >= 100 && r.to <= 599 => Some(r),
        _ => {
            cx.diags.error(n.pos, path, "not a status code").allowed(ALLOWED);
            None
        }
    }
}
