//! Wall-clock time derived from monotonic instants, so that time-stamps computed from the same
//! instants chain exactly (a cycle's end is the next cycle's start, to the nanosecond).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::calendar::civil_from_days;

/// Maps monotonic [`Instant`]s to nanoseconds since the Unix epoch, anchored once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    anchor: Instant,
    anchor_unix_ns: u64,
}

impl Clock {
    /// A clock anchored at `now` to the system's current wall-clock time.
    pub(crate) fn anchored(now: Instant) -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self::with_anchor(now, unix.as_nanos() as u64)
    }

    /// A clock where `anchor` is `anchor_unix_ns` (for tests).
    pub(crate) fn with_anchor(anchor: Instant, anchor_unix_ns: u64) -> Self {
        Self {
            anchor,
            anchor_unix_ns,
        }
    }

    /// Nanoseconds since the Unix epoch at `t`.
    pub(crate) fn unix_ns(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.anchor) {
            Some(d) => self.anchor_unix_ns + d.as_nanos() as u64,
            None => self.anchor_unix_ns - self.anchor.duration_since(t).as_nanos() as u64,
        }
    }

    /// `t` as a UTC ISO-8601 string with milliseconds, `2026-11-25T13:11:09.953Z`.
    pub(crate) fn iso8601(&self, t: Instant) -> String {
        iso8601_from_unix_ns(self.unix_ns(t))
    }
}

/// Formats nanoseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn iso8601_from_unix_ns(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns / 1_000_000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601_from_unix_ns(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-25T13:11:09.953Z
        assert_eq!(
            iso8601_from_unix_ns(1_795_612_269_953_000_000),
            "2026-11-25T13:11:09.953Z"
        );
        assert_eq!(
            iso8601_from_unix_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn instants_map_consistently() {
        let t0 = Instant::now();
        let c = Clock::with_anchor(t0, 1_000_000_000);
        let t1 = t0 + Duration::from_nanos(1234);
        assert_eq!(c.unix_ns(t1) - c.unix_ns(t0), 1234);
    }
}
