//! The one place where `run` settings are range-checked: clap's value parsers
//! and the config file's deserialisers both call these, so a value the
//! command line refuses is refused in the file too (there with
//! `file:line:column`, from the TOML parser's span).

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

fn within<T: PartialOrd + Copy + std::fmt::Display>(v: T, lo: T, hi: T, what: &str) -> Result<T, String> {
    if v < lo || v > hi {
        return Err(format!("{what} = {v}: must be from {lo} to {hi}"));
    }
    Ok(v)
}

pub fn latency_ms(v: u64) -> Result<u64, String> {
    within(v, 1, 1000, "latency_ms")
}

pub fn queue(v: u64) -> Result<u64, String> {
    within(v, 64, 16_777_216, "queue")
}

pub fn ringbuf_mib(v: u32) -> Result<u32, String> {
    if !(1..=1024).contains(&v) || !v.is_power_of_two() {
        return Err(format!("ringbuf_mib = {v}: must be a power of two from 1 to 1024"));
    }
    Ok(v)
}

pub fn log_keep(v: u32) -> Result<u32, String> {
    within(v, 1, 1000, "log_keep")
}

/// Queues of the network outputs (alerts waiting for a slow receiver).
pub fn output_queue(v: usize) -> Result<usize, String> {
    within(v, 1, 10_000_000, "queue")
}

/// Alerts per second; NaN, infinite and negative rates would drop every alert.
pub fn rate(v: f64) -> Result<f64, String> {
    boxwatch_rules::aggregate::check_rate(v)?;
    Ok(v)
}

/// Folding window in seconds (0: off), at most a day.
pub fn aggregate_window(v: u64) -> Result<u64, String> {
    within(v, 0, 86_400, "aggregate_window")
}

/// `run --duration` in seconds (0: until stopped), at most ten years.
pub fn duration_secs(v: u64) -> Result<u64, String> {
    within(v, 0, 10 * 366 * 86_400, "duration")
}

/// `--stats-interval` in seconds (0: only at exit), at most a day.
pub fn stats_interval(v: u64) -> Result<u64, String> {
    within(v, 0, 86_400, "stats_interval")
}

/// A clap value parser from a check: parse `T`, then check it.
pub fn parser<T>(check: fn(T) -> Result<T, String>) -> impl Fn(&str) -> Result<T, String> + Clone
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    move |s: &str| {
        let v = s.trim().parse::<T>().map_err(|e| format!("{s:?}: {e}"))?;
        check(v)
    }
}

/// Deserialise an optional value and check it; the error lands on the value's span.
pub fn de_checked<'de, D, T>(d: D, check: fn(T) -> Result<T, String>) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)?.map(|v| check(v).map_err(serde::de::Error::custom)).transpose()
}

/// `#[serde(default, deserialize_with = "…")]` functions for the config file.
macro_rules! checked_fields {
    ($($name:ident: $t:ty = $check:path;)*) => {
        $(pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            de_checked(d, $check)
        })*
    };
}

pub mod de {
    use super::*;
    checked_fields! {
        latency_ms: u64 = super::latency_ms;
        queue: u64 = super::queue;
        ringbuf_mib: u32 = super::ringbuf_mib;
        log_keep: u32 = super::log_keep;
        output_queue: usize = super::output_queue;
        rate: f64 = super::rate;
        aggregate_window: u64 = super::aggregate_window;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_and_the_file_refuse_the_same_values() {
        let p = parser(latency_ms);
        assert!(p("0").is_err());
        assert_eq!(p("10"), Ok(10));
        assert!(parser(queue)("0").is_err());
        assert!(parser(rate)("NaN").is_err());
        assert!(parser(rate)("-1").is_err());
        assert!(parser(rate)("inf").is_err());
        assert_eq!(parser(rate)("0.2"), Ok(0.2));
        assert!(parser(duration_secs)("18446744073709551615").is_err());
        assert!(parser(ringbuf_mib)("3").is_err());
        assert!(parser(output_queue)("0").is_err());
    }
}
