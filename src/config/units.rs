//! Human-readable durations (`250ms`, `5s`, `1m`, `1h`) and sizes (`512`, `64KiB`, `1MiB`, `1MB`).
//!
//! Both parsers return an operator-facing hint on failure; the config builder prefixes it with the
//! key's place in the file.

use std::time::Duration;

/// Parses `250ms`, `5s`, `1.5s`, `1m`, `2h`. A bare number is rejected: `30` could mean seconds
/// or milliseconds, and guessing wrong turns a 30 s timeout into a 30 ms one.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` has no unit; write it as e.g. `{s}s` or `{s}ms`"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. `250ms`, `5s`, `1m`"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` in `{s}`; use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=31_536_000.0).contains(&secs) {
        return Err(format!("`{s}` is out of range (0 to 365 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `1024`, `64KiB`, `1MiB`, `1GiB`, and the decimal `KB`/`MB`/`GB` (powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. `512KiB` or `1MiB`"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "k" | "K" => 1 << 10,
        "MiB" | "m" | "M" => 1 << 20,
        "GiB" | "g" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}`; use B, KiB, MiB, GiB (or KB, MB, GB)"
            ))
        }
    };
    value.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

/// Renders a duration the way an operator would write it, for messages and the status page.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 || ms == 0 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("unknown duration unit"));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1000000h").unwrap_err().contains("out of range"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("1TiB").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn duration_rendering_round_trips() {
        for s in ["250ms", "5s", "1m", "90s"] {
            assert_eq!(fmt_duration(parse_duration(s).unwrap()), s);
        }
    }
}
