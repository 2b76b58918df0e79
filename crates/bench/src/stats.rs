//! The measuring logic that does not touch the network: sequence checking (loss and reorder
//! detection), percentiles, the median and spread of repeated runs, and duration parsing.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Checks that a subscriber receives every event of one publisher, in order: event `i` carries
/// sequence number `i`, starting at 0.
#[derive(Debug, Clone, Default)]
pub struct SeqChecker {
    next: u64,
}

/// What broke the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqError {
    /// `got` arrived while `expected` was due: `got - expected` events were lost.
    Gap { expected: u64, got: u64 },
    /// `got` arrived again or too late (a duplicate or a reordered event).
    Reorder { expected: u64, got: u64 },
}

impl fmt::Display for SeqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SeqError::Gap { expected, got } => write!(
                f,
                "event loss: expected event #{expected}, received #{got} ({} event(s) missing)",
                got - expected
            ),
            SeqError::Reorder { expected, got } => write!(
                f,
                "reordered or duplicate event: expected event #{expected}, received #{got} \
                 which came before"
            ),
        }
    }
}

impl std::error::Error for SeqError {}

impl SeqChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `seq` if it is the next one due.
    pub fn check(&mut self, seq: u64) -> Result<(), SeqError> {
        let expected = self.next;
        if seq == expected {
            self.next += 1;
            Ok(())
        } else if seq > expected {
            Err(SeqError::Gap { expected, got: seq })
        } else {
            Err(SeqError::Reorder { expected, got: seq })
        }
    }

    /// How many events were received in order (= the next sequence number due).
    pub fn received(&self) -> u64 {
        self.next
    }
}

/// The `p`-th percentile (0..=100) of `sorted` (ascending), by the nearest-rank method: the
/// smallest value such that at least `p` percent of the values are less than or equal to it.
/// `None` for an empty slice.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Round-trip latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Latency {
    /// From round trips in nanoseconds (sorted in place).
    pub fn from_nanos(samples: &mut [u64]) -> Option<Latency> {
        samples.sort_unstable();
        let us = |p: f64| percentile(samples, p).map(|ns| ns as f64 / 1000.0);
        Some(Latency {
            samples: samples.len(),
            p50_us: us(50.0)?,
            p90_us: us(90.0)?,
            p99_us: us(99.0)?,
            max_us: us(100.0)?,
        })
    }
}

/// The median and spread of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartiles (linear interpolation).
    pub q1: f64,
    pub q3: f64,
    /// `(max - min) / median`, as a fraction (0.05 = 5 %).
    pub spread: f64,
    pub n: usize,
}

/// Quantile `q` (0..=1) of `sorted` with linear interpolation between closest ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Summary {
    /// `None` for no values; NaN values are ignored.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let median = quantile(&v, 0.5);
        let (min, max) = (v[0], v[v.len() - 1]);
        Some(Summary {
            median,
            min,
            max,
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
            spread: if median != 0.0 {
                (max - min) / median
            } else {
                0.0
            },
            n: v.len(),
        })
    }
}

/// Parses `5s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 5s, 500ms or 2m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "invalid duration {text:?}: must be zero or positive"
        ));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_checker_accepts_a_complete_sequence() {
        let mut c = SeqChecker::new();
        for i in 0..1000 {
            c.check(i).unwrap();
        }
        assert_eq!(c.received(), 1000);
    }

    #[test]
    fn seq_checker_detects_a_gap() {
        let mut c = SeqChecker::new();
        c.check(0).unwrap();
        c.check(1).unwrap();
        let e = c.check(4).unwrap_err();
        assert_eq!(
            e,
            SeqError::Gap {
                expected: 2,
                got: 4
            }
        );
        assert!(e.to_string().contains("2 event(s) missing"), "{e}");
        // The first event already missing is lost, whatever comes after.
        let mut c = SeqChecker::new();
        assert!(matches!(c.check(1), Err(SeqError::Gap { expected: 0, .. })));
    }

    #[test]
    fn seq_checker_detects_a_reorder_and_a_duplicate() {
        let mut c = SeqChecker::new();
        for i in 0..3 {
            c.check(i).unwrap();
        }
        assert_eq!(
            c.check(1),
            Err(SeqError::Reorder {
                expected: 3,
                got: 1
            })
        );
        assert_eq!(
            c.check(2),
            Err(SeqError::Reorder {
                expected: 3,
                got: 2
            })
        );
        // A swap of two events shows as a gap first.
        let mut c = SeqChecker::new();
        c.check(0).unwrap();
        assert!(matches!(c.check(2), Err(SeqError::Gap { .. })));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 50.0), Some(20));
        assert_eq!(percentile(&v, 51.0), Some(30));
        assert_eq!(percentile(&v, 99.0), Some(40));
    }

    #[test]
    fn latency_from_unsorted_nanos() {
        let mut ns: Vec<u64> = (1..=1000).rev().map(|i| i * 1000).collect();
        let l = Latency::from_nanos(&mut ns).unwrap();
        assert_eq!(l.samples, 1000);
        assert_eq!(l.p50_us, 500.0);
        assert_eq!(l.p90_us, 900.0);
        assert_eq!(l.p99_us, 990.0);
        assert_eq!(l.max_us, 1000.0);
        assert!(Latency::from_nanos(&mut []).is_none());
    }

    #[test]
    fn median_and_spread() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 3));
        assert_eq!((s.q1, s.q3), (2.0, 4.0));
        assert!((s.spread - 4.0 / 3.0).abs() < 1e-12);
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!((s.q1, s.q3), (1.75, 3.25));
        let s = Summary::of(&[7.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.spread), (7.0, 7.0, 7.0, 0.0));
        assert!(Summary::of(&[]).is_none());
        assert_eq!(Summary::of(&[f64::NAN, 2.0]).unwrap().n, 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
