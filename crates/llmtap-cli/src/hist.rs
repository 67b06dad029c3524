//! Percentiles in bounded memory, for `llmtap stats` on files of any size.
//!
//! Up to [`EXACT_LIMIT`] values are kept as they are and percentiles are exact (nearest rank:
//! the value at rank ⌈q·n⌉ of the sorted values). Past that the values move into log-spaced
//! buckets (the DDSketch layout): bucket `i` holds `(γ^(i-1), γ^i]` with
//! `γ = (1+α)/(1-α)`, and a percentile is the bucket's midpoint `2γ^i/(γ+1)`, clamped to the
//! observed min and max. That answer is within a relative error of **α = 1 %** of the exact
//! nearest-rank value. Memory is one counter per occupied bucket: at most ~1,200 for values
//! spanning 1 µs to 3 hours in milliseconds, whatever the number of values.

use std::collections::BTreeMap;

/// Values kept exactly before switching to buckets.
pub const EXACT_LIMIT: usize = 1024;
/// Relative error bound of a percentile once bucketed.
pub const RELATIVE_ERROR: f64 = 0.01;
/// Values at or below this are counted in a zero bucket (reported as 0 or the minimum).
const MIN_POSITIVE: f64 = 1e-9;

/// A streaming percentile summary of non-negative values.
#[derive(Debug, Clone)]
pub struct Quantiles {
    exact: Option<Vec<f64>>,
    buckets: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for Quantiles {
    fn default() -> Self {
        Self {
            exact: Some(Vec::new()),
            buckets: BTreeMap::new(),
            zeros: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

impl Quantiles {
    /// Adds one value; negative, NaN and infinite values are ignored.
    pub fn record(&mut self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        match &mut self.exact {
            Some(values) if values.len() < EXACT_LIMIT => values.push(value),
            Some(values) => {
                let moved = std::mem::take(values);
                self.exact = None;
                for v in moved {
                    self.bucket(v);
                }
                self.bucket(value);
            }
            None => self.bucket(value),
        }
    }

    fn bucket(&mut self, value: f64) {
        if value <= MIN_POSITIVE {
            self.zeros += 1;
        } else {
            // Finite positive input and a bounded log keep this well within i32.
            let index = (value.ln() / gamma().ln()).ceil() as i32;
            *self.buckets.entry(index).or_insert(0) += 1;
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Arithmetic mean (exact).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Largest value (exact).
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Whether percentiles are still exact.
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }

    /// Nearest-rank percentile for `q` in `[0, 1]`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if let Some(values) = &self.exact {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let index = usize::try_from(rank - 1).ok()?;
            return sorted.get(index).copied();
        }
        let mut seen = self.zeros;
        if rank <= seen {
            return Some(self.min.max(0.0));
        }
        let g = gamma();
        for (&index, &n) in &self.buckets {
            seen += n;
            if rank <= seen {
                let mid = 2.0 * g.powi(index) / (g + 1.0);
                return Some(mid.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_are_exact_nearest_rank() {
        let mut q = Quantiles::default();
        assert_eq!(q.quantile(0.5), None);
        for v in [40.0, 10.0, 30.0, 20.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0] {
            q.record(v);
        }
        assert_eq!(q.count(), 10);
        assert!(q.is_exact());
        assert_eq!(q.quantile(0.5), Some(50.0));
        assert_eq!(q.quantile(0.95), Some(100.0));
        assert_eq!(q.quantile(0.99), Some(100.0));
        assert_eq!(q.quantile(0.0), Some(10.0));
        assert_eq!(q.quantile(0.1), Some(10.0));
        assert_eq!(q.quantile(0.11), Some(20.0));
        assert_eq!(q.mean(), Some(55.0));
        assert_eq!(q.max(), Some(100.0));
        q.record(f64::NAN);
        q.record(-1.0);
        assert_eq!(q.count(), 10, "invalid values are ignored");
    }

    #[test]
    fn large_sets_stay_within_the_documented_error() {
        // 1..=100_000 in a scrambled order, with a long tail.
        let n = 100_000u64;
        let mut q = Quantiles::default();
        let mut exact = Vec::new();
        for i in 0..n {
            let k = (i * 7919) % n + 1;
            let v = if k.is_multiple_of(1000) {
                k as f64 * 37.5
            } else {
                k as f64 / 8.0
            };
            q.record(v);
            exact.push(v);
        }
        exact.sort_by(f64::total_cmp);
        assert!(!q.is_exact());
        for p in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let rank = ((p * n as f64).ceil() as usize).max(1);
            let truth = exact[rank - 1];
            let got = q.quantile(p).unwrap_or(f64::NAN);
            let err = (got - truth).abs() / truth;
            assert!(
                err <= RELATIVE_ERROR + 1e-12,
                "p{p}: got {got}, exact {truth}, error {err}"
            );
        }
        assert_eq!(q.max(), Some(exact[exact.len() - 1]));
        // Memory: buckets, not values.
        assert!(q.buckets.len() < 1200, "{} buckets", q.buckets.len());
    }

    #[test]
    fn switching_to_buckets_keeps_every_value_and_zeros() {
        let mut q = Quantiles::default();
        for _ in 0..EXACT_LIMIT {
            q.record(0.0);
        }
        assert!(q.is_exact());
        for _ in 0..EXACT_LIMIT {
            q.record(1000.0);
        }
        assert!(!q.is_exact());
        assert_eq!(q.count(), 2 * EXACT_LIMIT as u64);
        assert_eq!(q.quantile(0.5), Some(0.0));
        let p51 = q.quantile(0.51).unwrap_or(f64::NAN);
        assert!((p51 - 1000.0).abs() / 1000.0 <= RELATIVE_ERROR, "{p51}");
        assert!(p51 <= 1000.0, "never above the max");
    }
}
