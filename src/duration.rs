//! Human-readable durations for flags and the config file ("2ms", "500us", "30s", "1m").
use std::time::Duration;

/// Parses `<number><unit>` with unit `ns`, `us`, `ms`, `s`, `m` or `h`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| {
        format!("duration '{text}' needs a unit (ns, us, ms, s, m or h), e.g. '2ms'")
    })?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("duration '{text}': '{num}' is not a number"))?;
    let seconds = match unit.trim() {
        "ns" => value * 1e-9,
        "us" | "µs" => value * 1e-6,
        "ms" => value * 1e-3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("duration '{text}': unknown unit '{other}' (ns, us, ms, s, m, h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("duration '{text}' is not a finite, non-negative time"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The inverse of [`parse_duration`], exact for whole milliseconds and microseconds.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        "0".to_string()
    } else if ns % 1_000_000_000 == 0 {
        format!("{}s", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else if ns % 1_000 == 0 {
        format!("{}us", ns / 1_000)
    } else {
        format!("{ns}ns")
    }
}

/// Serde helpers so the config file writes durations the way flags do.
pub mod serde_opt {
    use super::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Serializes a plain `Duration` as text (for logging the effective configuration).
pub mod serde_text {
    use super::format_duration;
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("2ms").unwrap(), Duration::from_millis(2));
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration("10").unwrap_err().contains("unit"));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("xms").is_err());
    }

    #[test]
    fn round_trips() {
        for d in [Duration::from_millis(2), Duration::from_secs(30), Duration::from_micros(250), Duration::ZERO] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
