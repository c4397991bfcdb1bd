//! What the examples share: their command-line loop and the peak memory their `RESULT`
//! lines report. Each example includes it with `mod common;`.

use std::fmt::Display;
use std::str::FromStr;

/// Walks the command line: calls `set(flag, value)` for each `--flag value` pair, and
/// `set(flag, "")` for each flag listed in `switches` (flags that take no value).
/// `--help`/`-h`, a flag without its value, and any error of `set` return an error that
/// ends with `usage`.
pub fn parse_flags(
    usage: &str,
    switches: &[&str],
    mut set: impl FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage.into());
        }
        let value = if switches.contains(&flag.as_str()) {
            String::new()
        } else {
            it.next().ok_or_else(|| format!("{flag} needs a value\n{usage}"))?
        };
        set(&flag, &value).map_err(|e| format!("{e}\n{usage}"))?;
    }
    Ok(())
}

/// `value` read as a `T`, or an error naming `flag` and the value.
pub fn parse<T: FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: Display,
{
    value.parse().map_err(|e| format!("{flag} {value}: {e}"))
}

/// Peak resident set size in MB, from /proc/self/status (Linux); 0 elsewhere.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or(0, |kb| kb / 1024)
}
