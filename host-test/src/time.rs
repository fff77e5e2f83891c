//! Times as `az` prints them.

use chrono::{Local, TimeZone};

/// `YYYY-MM-DD HH:MM:SS.ffffff` in the machine's local time zone, as `az account
/// get-access-token` prints `expiresOn` (UTC where no zone is configured, as in most CI images).
pub(crate) fn az_local(unix: u64) -> String {
    let seconds = i64::try_from(unix).unwrap_or(i64::MAX);
    match Local.timestamp_opt(seconds, 0).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => unix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::az_local;

    #[test]
    fn local_time_in_the_az_format() {
        // The zone is the machine's; the shape and the UTC instant are fixed.
        let shown = az_local(1_764_115_200 + 3661);
        assert_eq!(shown.len(), "2025-11-26 01:01:01.000000".len(), "{shown}");
        assert!(shown.ends_with(":01.000000"), "{shown}");
        let parsed =
            chrono::NaiveDateTime::parse_from_str(&shown, "%Y-%m-%d %H:%M:%S%.6f").unwrap();
        use chrono::TimeZone;
        let local = chrono::Local.from_local_datetime(&parsed).single().unwrap();
        assert_eq!(local.timestamp(), 1_764_115_200 + 3661);
    }
}
