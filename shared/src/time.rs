//! Timestamps: `SOURCE_DATE_EPOCH`-style environment values and RFC 3339 formatting, without
//! a calendar library (civil-from-days, proleptic Gregorian, UTC).

#[derive(Debug, thiserror::Error)]
#[error(
    "the environment variable {var} should be the number of seconds since January 1st 1970, 00:00 UTC, got: {value:?}"
)]
pub struct EpochError {
    pub var: &'static str,
    pub value: String,
}

/// Reads a Unix-seconds variable; unset or empty is `None`.
pub fn epoch_from_env(var: &'static str) -> Result<Option<i64>, EpochError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<i64>().map(Some).map_err(|_| EpochError { var, value: v }),
        _ => Ok(None),
    }
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
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
    use super::rfc3339;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-62_135_596_800), "0001-01-01T00:00:00Z");
    }
}
