//! `LastModifiedTime` in WOPI's ISO-8601 round-trip form (`2009-06-15T13:45:30.0000000Z`).

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn iso8601(seconds: u64, nanos: u32) -> String {
    let secs = seconds as i64;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:07}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60,
        nanos / 100
    )
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn round_trip_format() {
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00.0000000Z");
        // Microsoft's documented sample instant.
        assert_eq!(iso8601(1_245_073_530, 0), "2009-06-15T13:45:30.0000000Z");
        assert_eq!(
            iso8601(951_782_400, 123_456_789),
            "2000-02-29T00:00:00.1234567Z"
        );
        assert_eq!(iso8601(4_102_444_799, 0), "2099-12-31T23:59:59.0000000Z");
    }
}
