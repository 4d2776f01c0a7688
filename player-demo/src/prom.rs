//! Reading figures from a Prometheus text exposition page (tests and benchmarks).

/// Sum of the samples of metric `name` whose line contains `labels` (e.g. `source="peer"`;
/// empty matches every series of the metric). Comment lines and metrics whose names merely
/// start with `name` are skipped.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && l.contains(labels)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_matching_series_only() {
        let page = "# HELP x_total doc\n# TYPE x_total counter\nx_total{source=\"peer\"} 10\nx_total{source=\"origin\"} 5\nx_total_extra 7\nx_total 1\n";
        assert_eq!(metric_sum(page, "x_total", "source=\"peer\""), 10.0);
        assert_eq!(metric_sum(page, "x_total", ""), 16.0);
        assert_eq!(metric_sum(page, "missing", ""), 0.0);
    }
}
