//! Schedules: when a task's rounds start. Four forms: a 5-field cron expression (and the
//! `@hourly`-style macros Kubernetes accepts), `@every <duration>`, `@once`, and kdoctor's
//! two-field "M N" form (first round M minutes from now, then every N minutes).
//! Parsing refuses what a Kubernetes CronJob would refuse (`L`, `#`, `W`, seconds, `TZ=`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// A single round.
    Once,
    /// A cron expression exactly as a CronJob takes it.
    Cron(String),
    /// A fixed interval between round starts.
    Every(Duration),
    /// kdoctor's "M N": first round after `first_after_min` minutes, then every `every_min`.
    Minutes { first_after_min: u64, every_min: u64 },
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Once => f.write_str("@once"),
            Schedule::Cron(c) => f.write_str(c),
            Schedule::Every(d) => write!(f, "@every {}", format_duration(*d)),
            Schedule::Minutes {
                first_after_min,
                every_min,
            } => write!(f, "{first_after_min} {every_min}"),
        }
    }
}

/// The 5-field cron expression a CronJob can take for a fixed interval, when one exists:
/// minutes dividing an hour, hours dividing a day, or a day.
pub fn interval_cron(every: Duration) -> Option<String> {
    let secs = every.as_secs();
    if secs == 0 || !secs.is_multiple_of(60) || every.subsec_nanos() != 0 {
        return None;
    }
    let m = secs / 60;
    match m {
        1 => Some("* * * * *".into()),
        m if m < 60 && 60 % m == 0 => Some(format!("*/{m} * * * *")),
        60 => Some("0 * * * *".into()),
        m if m % 60 == 0 && m < 1440 && 1440 % m == 0 => Some(format!("0 */{} * * *", m / 60)),
        1440 => Some("0 0 * * *".into()),
        _ => None,
    }
}

const INTERVAL_ALLOWED: &str = "intervals a CronJob can repeat evenly: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 minutes; 1, 2, 3, 4, 6, 8, 12 hours; 24 hours";

impl Schedule {
    /// Time between two round starts, when fixed.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Schedule::Every(d) => Some(*d),
            Schedule::Minutes { every_min, .. } => Some(Duration::from_secs(every_min * 60)),
            _ => None,
        }
    }
}

/// A schedule that could not be parsed: the problem and what is allowed.
#[derive(Debug, PartialEq)]
pub struct ScheduleError {
    pub message: String,
    pub allowed: &'static str,
}

const NATIVE_ALLOWED: &str = "a 5-field cron expression such as \"*/10 * * * *\", @hourly, @daily, @weekly, @monthly, @yearly, \"@every 10m\", @once, or kdoctor's \"M N\" minutes";
const KDOCTOR_ALLOWED: &str = "\"M N\" (start after M minutes, then every N minutes, N ≥ 1) or a 5-field cron expression, fields separated by single spaces";

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

fn err(message: impl Into<String>, allowed: &'static str) -> ScheduleError {
    ScheduleError {
        message: message.into(),
        allowed,
    }
}

/// Parses a native schedule: every form.
pub fn parse_native(text: &str) -> Result<Schedule, ScheduleError> {
    let t = text.trim();
    if t == "@once" {
        return Ok(Schedule::Once);
    }
    if let Some(rest) = t.strip_prefix("@every") {
        let rest = rest.trim();
        let d = parse_duration(rest)
            .ok_or_else(|| err(format!("`{rest}` after @every is not a duration"), NATIVE_ALLOWED))?;
        if d < Duration::from_secs(60) {
            return Err(err(
                format!("@every {rest} is shorter than a minute, the smallest CronJob interval"),
                NATIVE_ALLOWED,
            ));
        }
        if interval_cron(d).is_none() {
            return Err(err(
                format!("@every {rest} has no CronJob equivalent"),
                INTERVAL_ALLOWED,
            ));
        }
        return Ok(Schedule::Every(d));
    }
    if MACROS.contains(&t) {
        return Ok(Schedule::Cron(t.to_string()));
    }
    if t.starts_with('@') {
        return Err(err(format!("unknown schedule macro `{t}`"), NATIVE_ALLOWED));
    }
    if t.starts_with("TZ=") || t.starts_with("CRON_TZ=") {
        return Err(err(
            "a time zone inside the schedule is refused by Kubernetes; use spec.timeZone",
            NATIVE_ALLOWED,
        ));
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    match fields.len() {
        2 => {
            let m = minutes(&fields, NATIVE_ALLOWED)?;
            if let Some(every) = m.interval()
                && interval_cron(every).is_none()
            {
                return Err(err(
                    format!("every {} minutes has no CronJob equivalent", every.as_secs() / 60),
                    INTERVAL_ALLOWED,
                ));
            }
            Ok(m)
        }
        5 => cron(t, NATIVE_ALLOWED),
        n => Err(err(
            format!("`{t}` has {n} fields; a cron expression has 5"),
            NATIVE_ALLOWED,
        )),
    }
}

/// Parses a kdoctor `spec.schedule.schedule`: kdoctor splits on single spaces and takes 2 or 5 parts.
pub fn parse_kdoctor(text: &str) -> Result<Schedule, ScheduleError> {
    if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        return Err(err(
            "a time zone inside the schedule is not accepted by kdoctor",
            KDOCTOR_ALLOWED,
        ));
    }
    let fields: Vec<&str> = text.split(' ').collect();
    // kdoctor splits on single spaces: a doubled, leading or trailing space makes an empty
    // part, which kdoctor refuses and which must not reach the cron parser.
    if fields.len() > 1 && fields.iter().any(|f| f.is_empty()) {
        return Err(err(
            format!("`{text}` has a doubled, leading or trailing space; kdoctor separates parts by single spaces"),
            KDOCTOR_ALLOWED,
        ));
    }
    match fields.len() {
        2 => minutes(&fields, KDOCTOR_ALLOWED),
        5 => cron(text, KDOCTOR_ALLOWED),
        n => Err(err(
            format!("`{text}` has {n} space-separated parts; kdoctor takes two or five"),
            KDOCTOR_ALLOWED,
        )),
    }
}

/// A year of minutes: the longest "M N" value (and kdoctor round timeout) kpatrol accepts.
pub const MAX_MINUTES: u64 = 525_600;

fn minutes(fields: &[&str], allowed: &'static str) -> Result<Schedule, ScheduleError> {
    let [first, every] = fields else {
        return Err(err("\"M N\" has two parts", allowed));
    };
    let first = first
        .parse::<u64>()
        .map_err(|_| err(format!("`{first}` is not a whole number of minutes"), allowed))?;
    let every = every
        .parse::<u64>()
        .map_err(|_| err(format!("`{every}` is not a whole number of minutes"), allowed))?;
    if every < 1 {
        return Err(err("the interval N in \"M N\" must be at least 1 minute", allowed));
    }
    if first > MAX_MINUTES || every > MAX_MINUTES {
        return Err(err(
            format!("\"M N\" values above {MAX_MINUTES} minutes (a year)"),
            allowed,
        ));
    }
    Ok(Schedule::Minutes {
        first_after_min: first,
        every_min: every,
    })
}

fn cron(text: &str, allowed: &'static str) -> Result<Schedule, ScheduleError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, _, dom, _, dow] = fields.as_slice() else {
        return Err(err(
            format!("`{text}` has {} fields; a cron expression has 5", fields.len()),
            allowed,
        ));
    };
    let (dom, dow) = (dom.to_ascii_uppercase(), dow.to_ascii_uppercase());
    // Only day of month and day of week can hold L, W or #; day names hold no L, and month
    // names (JUL) or WED in the day of week are fine.
    if text.contains('#') || dom.contains('L') || dom.contains('W') || dow.contains('L') {
        return Err(err(
            format!("`{text}` uses L, W or # (last, weekday, nth), which Kubernetes CronJobs refuse"),
            allowed,
        ));
    }
    // robfig/cron (Kubernetes) takes days of the week 0-6; croner would also take 7.
    let seven = dow
        .split(',')
        .any(|part| part.split('/').next().unwrap_or("").split('-').any(|v| v == "7"));
    if seven {
        return Err(err(
            format!("day of week 7 in `{text}`: Kubernetes takes 0-6 (Sunday is 0) or SUN-SAT"),
            allowed,
        ));
    }
    croner::Cron::from_str(text).map_err(|e| err(format!("`{text}` is not a valid cron expression: {e}"), allowed))?;
    Ok(Schedule::Cron(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_forms() {
        assert_eq!(parse_native("@once"), Ok(Schedule::Once));
        assert_eq!(parse_native("*/10 * * * *"), Ok(Schedule::Cron("*/10 * * * *".into())));
        assert_eq!(
            parse_native("0 9 * * MON-FRI"),
            Ok(Schedule::Cron("0 9 * * MON-FRI".into()))
        );
        assert_eq!(parse_native("@hourly"), Ok(Schedule::Cron("@hourly".into())));
        assert_eq!(
            parse_native("@every 10m"),
            Ok(Schedule::Every(Duration::from_secs(600)))
        );
        assert_eq!(
            parse_native("0 1"),
            Ok(Schedule::Minutes {
                first_after_min: 0,
                every_min: 1
            })
        );
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for bad in [
            "0 0 L * *",
            "0 0 * * 1#2",
            "0 0 15W * *",
            "0 0 0 * * *",
            "61 * * * *",
            "@every 10",
            "@every 30s",
            "@sometimes",
            "TZ=UTC 0 * * * *",
            "0 0",
            "1 0",
        ] {
            let r = parse_native(bad);
            assert!(r.is_err(), "{bad} should be refused, got {r:?}");
        }
    }

    #[test]
    fn kdoctor_forms_split_on_single_spaces() {
        assert_eq!(
            parse_kdoctor("0 1"),
            Ok(Schedule::Minutes {
                first_after_min: 0,
                every_min: 1
            })
        );
        assert_eq!(parse_kdoctor("1 2 * * *"), Ok(Schedule::Cron("1 2 * * *".into())));
        assert!(parse_kdoctor("0  1").is_err());
        assert!(parse_kdoctor("@every 1m").is_err());
        assert!(parse_kdoctor("-1 1").is_err());
        assert!(parse_kdoctor("0 0").is_err());
    }
}
