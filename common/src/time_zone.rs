//! The session setting `TimeZone` as PostgreSQL reads it: an IANA zone name
//! (`UTC`, `Europe/Paris`, `America/New_York`, any case), or a number of
//! hours east of UTC (`SET TIME ZONE -5`, `5.5`); `LOCAL` and `DEFAULT`
//! mean the server's default, `UTC`. A `timestamptz` is shown in it with
//! its offset at that instant (`+00`, `-05`, `+05:30`).

use chrono::{Offset, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A time zone a session can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimeZone {
    /// An IANA zone (with its daylight-saving rules).
    Named(Tz),
    /// A fixed offset, in seconds east of UTC.
    Fixed(i32),
}

impl Default for SessionTimeZone {
    fn default() -> Self {
        SessionTimeZone::Named(Tz::UTC)
    }
}

impl SessionTimeZone {
    /// Reads a `TimeZone` value; `None` when PostgreSQL would refuse it
    /// (`invalid value for parameter "TimeZone"`).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim().trim_matches('\'');
        if value.eq_ignore_ascii_case("local") || value.eq_ignore_ascii_case("default") {
            return Some(Self::default());
        }
        if let Ok(hours) = value.parse::<f64>() {
            // PostgreSQL allows offsets up to 15 hours either way.
            if !hours.is_finite() || hours.abs() > 15.0 {
                return None;
            }
            return Some(SessionTimeZone::Fixed((hours * 3600.0).round() as i32));
        }
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(value))
            .map(|tz| SessionTimeZone::Named(*tz))
    }

    /// The offset east of UTC, in seconds, at `utc_micros` (microseconds
    /// since the Unix epoch).
    pub fn offset_at(&self, utc_micros: i64) -> i32 {
        match self {
            SessionTimeZone::Fixed(seconds) => *seconds,
            SessionTimeZone::Named(tz) => {
                let seconds = utc_micros.div_euclid(1_000_000);
                match Utc.timestamp_opt(seconds, 0).single() {
                    Some(instant) => tz
                        .offset_from_utc_datetime(&instant.naive_utc())
                        .fix()
                        .local_minus_utc(),
                    None => 0,
                }
            }
        }
    }

    /// The zone as DataFusion's `execution.time_zone` names it (an IANA
    /// name, or `+HH:MM`).
    pub fn arrow_name(&self) -> String {
        match self {
            SessionTimeZone::Named(tz) => tz.name().to_string(),
            SessionTimeZone::Fixed(seconds) => {
                let sign = if *seconds < 0 { '-' } else { '+' };
                let abs = seconds.unsigned_abs();
                format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
            }
        }
    }
}

/// An offset as PostgreSQL appends it to a `timestamptz`: `+00`, `-05`,
/// `+05:30`, `-03:30:15`.
pub fn format_offset(seconds_east: i32) -> String {
    let sign = if seconds_east < 0 { '-' } else { '+' };
    let abs = seconds_east.unsigned_abs();
    let (hours, minutes, seconds) = (abs / 3600, abs % 3600 / 60, abs % 60);
    match (minutes, seconds) {
        (0, 0) => format!("{sign}{hours:02}"),
        (_, 0) => format!("{sign}{hours:02}:{minutes:02}"),
        _ => format!("{sign}{hours:02}:{minutes:02}:{seconds:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_postgres_accepts() {
        assert_eq!(
            SessionTimeZone::parse("utc"),
            Some(SessionTimeZone::Named(Tz::UTC))
        );
        assert_eq!(
            SessionTimeZone::parse("'America/New_York'"),
            Some(SessionTimeZone::Named(Tz::America__New_York))
        );
        assert_eq!(
            SessionTimeZone::parse("-5"),
            Some(SessionTimeZone::Fixed(-5 * 3600))
        );
        assert_eq!(
            SessionTimeZone::parse("5.5"),
            Some(SessionTimeZone::Fixed(5 * 3600 + 1800))
        );
        assert_eq!(
            SessionTimeZone::parse("LOCAL"),
            Some(SessionTimeZone::default())
        );
        assert_eq!(SessionTimeZone::parse("Foo/Bar"), None);
        assert_eq!(SessionTimeZone::parse("40"), None);
    }

    #[test]
    fn offsets_follow_daylight_saving() {
        let new_york = SessionTimeZone::parse("America/New_York").unwrap();
        // 2024-01-02 03:04:05 UTC (winter) and 2024-07-02 03:04:05 UTC (summer).
        assert_eq!(new_york.offset_at(1_704_164_645_000_000), -5 * 3600);
        assert_eq!(new_york.offset_at(1_719_889_445_000_000), -4 * 3600);
        assert_eq!(format_offset(-5 * 3600), "-05");
        assert_eq!(format_offset(0), "+00");
        assert_eq!(format_offset(5 * 3600 + 1800), "+05:30");
        assert_eq!(SessionTimeZone::Fixed(-5 * 3600).arrow_name(), "-05:00");
        assert_eq!(new_york.arrow_name(), "America/New_York");
    }
}
