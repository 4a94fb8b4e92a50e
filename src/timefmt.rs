//! RFC 3339 UTC timestamps (`2024-05-01T12:34:56.789Z`) without a date crate: the access log
//! writes one per request, so the date part is formatted once per second per thread and only
//! the milliseconds are written each time.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS` text.
    static LAST: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for `unix_ms`.
pub fn write_rfc3339_ms(out: &mut Vec<u8>, unix_ms: u64) {
    let secs = unix_ms / 1000;
    let (cached, mut text) = LAST.with(Cell::get);
    if cached != secs {
        text = seconds_text(secs);
        LAST.with(|c| c.set((secs, text)));
    }
    out.extend_from_slice(&text);
    let ms = (unix_ms % 1000) as u32;
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// The same as a `String` (for the admin page's error list).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let mut v = Vec::with_capacity(24);
    write_rfc3339_ms(&mut v, unix_ms);
    String::from_utf8_lossy(&v).into_owned()
}

fn seconds_text(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut t = [0u8; 19];
    let two = |t: &mut [u8], v: u64| {
        t[0] = b'0' + (v / 10 % 10) as u8;
        t[1] = b'0' + (v % 10) as u8;
    };
    let y = y.clamp(0, 9999) as u64;
    two(&mut t[0..2], y / 100);
    two(&mut t[2..4], y % 100);
    t[4] = b'-';
    two(&mut t[5..7], m);
    t[7] = b'-';
    two(&mut t[8..10], d);
    t[10] = b'T';
    two(&mut t[11..13], rem / 3600);
    t[13] = b':';
    two(&mut t[14..16], rem / 60 % 60);
    t[16] = b':';
    two(&mut t[17..19], rem % 60);
    t
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_ms(4_102_444_800_123), "2100-01-01T00:00:00.123Z");
        // The per-second cache does not leak one second's text into the next.
        assert_eq!(rfc3339_ms(1_709_251_200_000), "2024-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_709_251_200_500), "2024-03-01T00:00:00.500Z");
    }
}
