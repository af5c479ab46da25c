//! Kubernetes' naming rules as the API server applies them, for every task field that becomes
//! part of an object or a path: object names (DNS-1123 labels and subdomains), label keys and
//! values, Secret and ConfigMap keys, time zones, quantities (`256Mi`), and the host names a probe looks up. Pure:
//! each returns why a value is refused, in words a task author can act on.

use super::time_zones::ZONES;

/// What an object name may hold: a DNS-1123 subdomain.
pub const SUBDOMAIN_ALLOWED: &str = "lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit, at most 253 characters";
/// What a Secret or ConfigMap key may hold.
pub const KEY_ALLOWED: &str = "letters, digits, '-', '_' and '.', at most 253 characters, not `.` or `..`";
pub const LABEL_KEY_ALLOWED: &str = "an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
pub const LABEL_VALUE_ALLOWED: &str =
    "empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
pub const HOST_ALLOWED: &str = "a DNS name of ASCII letters, digits, '-' and '_' in dot-separated parts of 1–63 characters (253 in all; IDNs in their xn-- form), or an IP address";

/// A kind of name a task gives Kubernetes or the probe, with its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A Secret or ConfigMap name (it becomes a volume source and a folder under the mounts).
    Object,
    Namespace,
    /// A Secret or ConfigMap key (it becomes a file name).
    Key,
    /// A host name or IP address a probe sends to.
    Host,
}

impl NameRule {
    /// Why `s` breaks the rule.
    pub fn problem(self, s: &str) -> Option<String> {
        match self {
            NameRule::Object => dns_subdomain_problem(s),
            NameRule::Namespace => dns_label_problem(s, 63),
            NameRule::Key => config_key_problem(s),
            NameRule::Host => host_problem(s),
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            NameRule::Object => "Kubernetes object name",
            NameRule::Namespace => "namespace",
            NameRule::Key => "Secret or ConfigMap key",
            NameRule::Host => "host name",
        }
    }

    pub fn allowed(self) -> &'static str {
        match self {
            NameRule::Object => SUBDOMAIN_ALLOWED,
            NameRule::Namespace => {
                "a DNS-1123 label: lower-case letters, digits and '-', starting with a letter, at most 63 characters"
            }
            NameRule::Key => KEY_ALLOWED,
            NameRule::Host => HOST_ALLOWED,
        }
    }
}

/// Why `s` is not a DNS-1123 label of at most `max` characters starting with a letter.
pub fn dns_label_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > max {
        return Some(format!("it has {} characters", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!("it contains {c:?}"));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("it does not start with a letter".into());
    }
    if s.ends_with('-') {
        return Some("it ends with '-'".into());
    }
    None
}

/// Why `s` is not a DNS-1123 subdomain (the rule for Secret, ConfigMap and most object names).
pub fn dns_subdomain_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > 253 {
        return Some(format!("it has {} characters", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Some(format!("it contains {c:?}"));
    }
    for label in s.split('.') {
        let ok_ends = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if label.is_empty() || !label.starts_with(ok_ends) || !label.ends_with(ok_ends) {
            return Some(format!("part `{label}` must start and end with a letter or digit"));
        }
    }
    None
}

/// Why `s` is not a key of a Secret or ConfigMap (`[-._a-zA-Z0-9]+`, not `.` or `..`): such a
/// key becomes a file name under the mount, so nothing else may pass.
pub fn config_key_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > 253 {
        return Some(format!("it has {} characters", s.len()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c))) {
        return Some(format!("it contains {c:?}"));
    }
    if s == "." || s == ".." {
        return Some(format!("`{s}` names a directory"));
    }
    None
}

/// A label name or value: at most 63 of `[-_.A-Za-z0-9]`, alphanumeric at both ends.
fn label_name_problem(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!("it has {} characters", s.len()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c))) {
        return Some(format!("it contains {c:?}"));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("it must start and end with a letter or digit".into());
    }
    None
}

/// Why `s` is not a label (or node selector) key: `[prefix/]name`.
pub fn label_key_problem(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && let Some(problem) = dns_subdomain_problem(p)
    {
        return Some(format!("its prefix `{p}`: {problem}"));
    }
    if name.is_empty() {
        return Some("its name is empty".into());
    }
    label_name_problem(name)
}

/// Why `s` is not a label (or node selector) value.
pub fn label_value_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    label_name_problem(s)
}

/// Whether `tz` is a time zone of the tz database (as the API server checks a CronJob's).
pub fn is_time_zone(tz: &str) -> bool {
    ZONES.binary_search(&tz).is_ok()
}

/// Why `s` is not a host name a probe can look up (or an IP address): one line, ASCII, no
/// empty part but a final dot.
pub fn host_problem(s: &str) -> Option<String> {
    if s.trim().is_empty() {
        return Some("it is blank".into());
    }
    if s.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Some(format!("it contains {c:?}"));
    }
    if !s.is_ascii() {
        return Some("it is not ASCII: write an internationalised name in its xn-- form".into());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.len() > 253 {
        return Some(format!("it has {} characters", s.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty part (`..`, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Some(format!("part `{label}` has {} characters", label.len()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!("it contains {c:?}"));
        }
    }
    None
}

/// Bytes of a Kubernetes quantity such as `128Mi`, `1G` or `1e9`; `None` for what it cannot read.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(s, f)| q.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((q, 1.0));
    let v = number.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)? * factor;
    (v < u64::MAX as f64).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_would_leave_the_mount_are_refused() {
        for bad in ["", ".", "..", "../x", "/etc/hostname", "a/b", "a b", "ü", "a\nb"] {
            assert!(config_key_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["ca.crt", "tls.key", "..data", "a-b_c.d", "X"] {
            assert_eq!(config_key_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn object_names_are_subdomains() {
        for bad in ["../../../../etc", "/etc", "Upper", "a..b", "-a", "a-", ""] {
            assert!(dns_subdomain_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(dns_subdomain_problem("db-creds.v2"), None);
    }

    #[test]
    fn labels_follow_the_api_server() {
        assert_eq!(label_key_problem("app.kubernetes.io/name"), None);
        assert_eq!(label_key_problem("team"), None);
        for bad in ["", "a/", "/a", "Bad_Prefix/x", "a b", "-x", "x".repeat(64).as_str()] {
            assert!(label_key_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(label_value_problem(""), None);
        assert_eq!(label_value_problem("v1.2_beta-3"), None);
        for bad in ["a b", "-a", "a\n", "ü", "x".repeat(64).as_str()] {
            assert!(label_value_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn time_zones_come_from_the_database() {
        for tz in ["UTC", "Europe/Berlin", "America/New_York", "US/Eastern", "Etc/GMT+5"] {
            assert!(is_time_zone(tz), "{tz}");
        }
        for tz in ["Not/AZone", "Local", "", "utc", "../etc/passwd"] {
            assert!(!is_time_zone(tz), "{tz}");
        }
        assert!(ZONES.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
    }

    #[test]
    fn hosts_are_one_line_of_ascii_without_empty_parts() {
        for good in [
            "example.com",
            "kubernetes.default.svc.cluster.local.",
            "xn--bcher-kva.example",
            "::1",
            "_dns.x",
        ] {
            assert_eq!(host_problem(good), None, "{good:?}");
        }
        for bad in [
            "",
            " ",
            "a..b",
            ".a",
            "a\nb",
            "bücher.example",
            "a b",
            "x".repeat(64).as_str(),
        ] {
            assert!(host_problem(bad).is_some(), "{bad:?}");
        }
    }
}
