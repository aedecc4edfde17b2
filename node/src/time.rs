//! Times: stored as Unix milliseconds UTC, shown as RFC 3339 in UTC (`at`) and in the office's
//! time zone (`at_local`, chrono-tz, from the reference data).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

/// RFC 3339 in UTC (`2026-11-21T09:00:00Z`; milliseconds when there are any).
pub fn rfc3339_utc(millis: i64) -> String {
    match Utc.timestamp_millis_opt(millis).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => String::new(),
    }
}

/// The instant `millis` in the IANA zone `zone` as RFC 3339 with its offset; UTC when the zone
/// is unknown.
pub fn rfc3339_local(millis: i64, zone: &str) -> String {
    let Some(t) = Utc.timestamp_millis_opt(millis).single() else {
        return String::new();
    };
    match zone.parse::<Tz>() {
        Ok(tz) => t
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        Err(_) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

/// Unix milliseconds of a UTC time.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kazakhstan moved to one zone, UTC+5, on 1 March 2024: Almaty must say +05:00 in 2026,
    /// not the +06:00 of older tz data. Aqtau was already +05:00.
    #[test]
    fn kazakhstan_is_utc_plus_5_in_2026() {
        let noon = Utc
            .with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
            .single()
            .expect("valid date")
            .timestamp_millis();
        assert_eq!(
            rfc3339_local(noon, "Asia/Almaty"),
            "2026-11-21T17:00:00+05:00"
        );
        assert_eq!(
            rfc3339_local(noon, "Asia/Aqtau"),
            "2026-11-21T17:00:00+05:00"
        );
        assert_eq!(
            rfc3339_local(noon, "Asia/Baku"),
            "2026-11-21T16:00:00+04:00"
        );
        assert_eq!(
            rfc3339_local(noon, "Asia/Tbilisi"),
            "2026-11-21T16:00:00+04:00"
        );
        // Before the change, Almaty was +06:00.
        let before = Utc
            .with_ymd_and_hms(2024, 1, 15, 12, 0, 0)
            .single()
            .expect("valid date")
            .timestamp_millis();
        assert_eq!(
            rfc3339_local(before, "Asia/Almaty"),
            "2024-01-15T18:00:00+06:00"
        );
    }

    #[test]
    fn utc_and_unknown_zones() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(rfc3339_local(0, "Mars/Olympus"), "1970-01-01T00:00:00Z");
    }
}
