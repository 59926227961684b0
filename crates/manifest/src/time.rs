//! UTC timestamps as the manifest writes them (`2026-11-27T09:00:00Z`).

/// Milliseconds since the Unix epoch of an RFC 3339 time with its offset
/// (`Z` or `+HH:MM`); `None` if it is not one, or before 1970. The date and
/// time are joined by `T`, as the docs write them (chrono also takes a space).
pub fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    if text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(time.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_utc;

    #[test]
    fn parses_utc_times_and_refuses_the_rest() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc("2000-02-29T00:00:00.123Z"),
            Some(951_782_400_123)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-11-30T23:59:59.9Z"),
            Some(1_796_083_199_900)
        );
        for bad in [
            "2026-11-30T23:59:59",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-30 23:59:59Z",
            "2026-11-30T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }
}
