//! How list and show verbs print: aligned tables for people by default (as
//! kubectl does), the API's JSON with `-o json` for scripts; times in local
//! time with their zone, sizes and durations with units.

use chrono::{DateTime, Local, TimeZone as _, Utc};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::io::Write as _;

#[derive(Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The admin API's JSON, as it answered.
    Json,
}

/// `-o table|json` on a list or show verb.
#[derive(Args, Clone, Copy, Default)]
pub struct Format {
    /// How to print: `table` (aligned columns) or `json` (the API's answer).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl Format {
    /// Prints `value` as JSON, or as the table `render` makes of it.
    pub fn print(self, value: &Value, render: impl FnOnce(&Value) -> Table) {
        match self.output {
            Output::Json => crate::queue::print(value),
            Output::Table => render(value).print(),
        }
    }
}

/// Columns with a header, each as wide as its widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// Space between columns.
const GAP: &str = "  ";

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// A row per element of `items`, made by `cells`.
    pub fn rows(mut self, items: &Value, cells: impl Fn(&Value) -> Vec<String>) -> Self {
        for item in items.as_array().into_iter().flatten() {
            self.row(cells(item));
        }
        self
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    // The last column is not padded: no trailing blanks.
                    line.push_str(cell);
                } else {
                    let pad = width - cell.chars().count();
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(GAP);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.render().as_bytes());
        let _ = out.flush();
    }
}

/// A cell for a value that may be absent (`-`). Control characters (a
/// newline or an escape sequence in a name) show as spaces: a cell never
/// breaks its row or writes to the terminal.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        other => other.to_string(),
    }
}

/// A time given as milliseconds since the epoch, in local time.
pub fn time_ms(value: &Value) -> String {
    value
        .as_i64()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map_or_else(|| "-".to_owned(), local)
}

/// A time given as RFC 3339 text, in local time.
pub fn time_text(value: &Value) -> String {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| text(value), |t| local(t.with_timezone(&Utc)))
}

/// Local time with its offset from UTC, to the second: `2026-12-01 22:32:05 +01:00`.
fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// A byte count with a binary unit: `76 B`, `1.5 KiB`, `6.0 MiB`.
pub fn size(value: &Value) -> String {
    let Some(bytes) = value.as_u64() else {
        return text(value);
    };
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut amount = bytes as f64 / 1024.0;
    let mut unit = 0;
    while amount >= 1024.0 && unit + 1 < UNITS.len() {
        amount /= 1024.0;
        unit += 1;
    }
    format!("{amount:.1} {}", UNITS[unit])
}

/// A duration given in milliseconds: `8 ms`, `1.5 s`, `4 min 10 s`, `7 h`, `4 d`.
pub fn duration_ms(value: &Value) -> String {
    let Some(ms) = value.as_u64() else {
        return text(value);
    };
    const S: u64 = 1000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const D: u64 = 24 * H;
    match ms {
        ms if ms < S => format!("{ms} ms"),
        ms if ms < 10 * S && ms % S != 0 => format!("{:.1} s", ms as f64 / S as f64),
        ms if ms < MIN => format!("{} s", ms / S),
        ms if ms < H => with_rest(ms / MIN, "min", ms % MIN / S, "s"),
        ms if ms < D => with_rest(ms / H, "h", ms % H / MIN, "min"),
        ms => with_rest(ms / D, "d", ms % D / H, "h"),
    }
}

fn with_rest(whole: u64, unit: &str, rest: u64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{whole} {unit}")
    } else {
        format!("{whole} {unit} {rest} {rest_unit}")
    }
}

/// `text` cut to `max` characters, with `...` when cut; control
/// characters (a body's newlines) shown as spaces, so a row stays one line.
pub fn clipped(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_to_their_widest_cell() {
        let mut table = Table::new(&["NAME", "N"]);
        table.row(vec!["a".into(), "1".into()]);
        table.row(vec!["longer".into(), "22".into()]);
        assert_eq!(table.render(), "NAME    N\na       1\nlonger  22\n");
    }

    #[test]
    fn sizes_and_durations_carry_units() {
        assert_eq!(size(&json!(76)), "76 B");
        assert_eq!(size(&json!(1536)), "1.5 KiB");
        assert_eq!(size(&json!(6_299_648)), "6.0 MiB");
        assert_eq!(size(&json!(null)), "-");
        assert_eq!(duration_ms(&json!(8)), "8 ms");
        assert_eq!(duration_ms(&json!(1500)), "1.5 s");
        assert_eq!(duration_ms(&json!(30_000)), "30 s");
        assert_eq!(duration_ms(&json!(250_000)), "4 min 10 s");
        assert_eq!(duration_ms(&json!(25_200_000)), "7 h");
        assert_eq!(duration_ms(&json!(345_600_000)), "4 d");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(text(&json!("a\nb\u{1b}[31m")), "a b [31m");
        assert_eq!(text(&json!(null)), "-");
    }

    #[test]
    fn long_text_is_clipped_to_one_line() {
        assert_eq!(clipped("a\nb", 10), "a b");
        assert_eq!(clipped("abcdefghij", 6), "abc...");
    }
}
