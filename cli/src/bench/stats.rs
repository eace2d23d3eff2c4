//! Percentiles of latency samples, and medians across rounds.

/// The quantiles of a latency curve (for the plot and the JSON), in per-million so
/// that ranks are integer arithmetic: 0 (the minimum) ... 999 900 (p99.99), 1 000 000
/// (the maximum).
pub(crate) const CURVE_PPM: [u64; 13] = [
    0, 100_000, 250_000, 500_000, 750_000, 900_000, 950_000, 990_000, 995_000, 999_000, 999_500,
    999_900, 1_000_000,
];

/// The latency at each of [`CURVE_PPM`], in ns, and the number of samples (a
/// quantile `q` is only meaningful if `samples >= 1 / (1 - q)`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Curve {
    pub(crate) samples: usize,
    pub(crate) ns: Vec<u64>,
}

/// Summary of a set of round-trip times, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) min: u64,
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
}

/// Nearest-rank percentile of sorted, non-empty `sorted`, the percentile given in
/// thousandths (500 = p50, 999 = p99.9); integer arithmetic, so no rounding surprise.
fn rank(sorted: &[u64], per_mille: usize) -> u64 {
    rank_ppm(sorted, per_mille as u64 * 1000)
}

/// As [`rank`], in millionths.
fn rank_ppm(sorted: &[u64], ppm: u64) -> u64 {
    let n = sorted.len();
    let k = ((ppm as u128 * n as u128).div_ceil(1_000_000) as usize).clamp(1, n);
    sorted[k - 1]
}

impl Curve {
    /// The curve of `samples` (sorting them). `None` if there are none.
    pub(crate) fn of(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Curve {
            samples: samples.len(),
            ns: CURVE_PPM.iter().map(|&q| rank_ppm(samples, q)).collect(),
        })
    }

    /// Each point's median across `rounds`, with the smallest sample count.
    pub(crate) fn median_of(rounds: &[Curve]) -> Option<Self> {
        let samples = rounds.iter().map(|c| c.samples).min()?;
        let ns = (0..CURVE_PPM.len())
            .map(|i| {
                let v: Vec<f64> = rounds
                    .iter()
                    .map(|c| c.ns.get(i).copied().unwrap_or(0) as f64)
                    .collect();
                median(&v).round() as u64
            })
            .collect();
        Some(Curve { samples, ns })
    }
}

impl Percentiles {
    /// Summarises `samples` (sorting them). `None` if there are none.
    pub(crate) fn of(mut samples: Vec<u64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Some(Percentiles {
            min: samples[0],
            p50: rank(&samples, 500),
            p99: rank(&samples, 990),
            p999: rank(&samples, 999),
            max: samples[samples.len() - 1],
            mean: sum as f64 / samples.len() as f64,
        })
    }

    /// Each figure's median across `rounds` (each field on its own).
    pub(crate) fn median_of(rounds: &[Percentiles]) -> Option<Self> {
        if rounds.is_empty() {
            return None;
        }
        let m = |f: fn(&Percentiles) -> u64| {
            median(&rounds.iter().map(|r| f(r) as f64).collect::<Vec<_>>()).round() as u64
        };
        Some(Percentiles {
            min: m(|r| r.min),
            p50: m(|r| r.p50),
            p99: m(|r| r.p99),
            p999: m(|r| r.p999),
            max: m(|r| r.max),
            mean: median(&rounds.iter().map(|r| r.mean).collect::<Vec<_>>()),
        })
    }
}

/// The median of non-empty `values` (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = Percentiles::of((1..=1000).collect()).unwrap();
        assert_eq!(
            (p.min, p.p50, p.p99, p.p999, p.max),
            (1, 500, 990, 999, 1000)
        );
        assert_eq!(p.mean, 500.5);
        let c = Curve::of(&mut (1..=1000).rev().collect::<Vec<_>>()).unwrap();
        assert_eq!(c.ns[0], 1);
        assert_eq!(c.ns[3], 500);
        assert_eq!(c.ns[9], 999);
        assert_eq!(c.ns[CURVE_PPM.len() - 1], 1000);
        let one = Percentiles::of(vec![7]).unwrap();
        assert_eq!((one.p50, one.p999), (7, 7));
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        let a = Percentiles {
            p50: 10,
            ..Default::default()
        };
        let b = Percentiles {
            p50: 30,
            ..Default::default()
        };
        let c = Percentiles {
            p50: 20,
            ..Default::default()
        };
        assert_eq!(Percentiles::median_of(&[a, b, c]).unwrap().p50, 20);
    }
}
