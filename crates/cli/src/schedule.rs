//! `nimbus schedule ...`: a running app's schedules and their next fire
//! times, through the admin API.

use crate::queue::AdminArgs;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// List schedules: expression, time zone, catch-up policy, the last tick
    /// fired and the next fire times (in the schedule's time zone).
    List {
        /// How many next fire times to show per schedule (1 to 100).
        #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
        next: u32,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(admin: &AdminArgs, command: ScheduleCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        ScheduleCommand::List { next, json } => {
            let listing = client.schedules(next)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&listing).unwrap_or_default()
                );
            } else {
                print!("{}", render(&listing));
            }
        }
    }
    Ok(())
}

/// One block per schedule:
/// `NAME -> FUNCTION  EXPRESSION  TIMEZONE  catch_up=POLICY`, then its last
/// fired tick and next fire times.
fn render(listing: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let schedules = listing["schedules"].as_array().cloned().unwrap_or_default();
    if schedules.is_empty() {
        return "no schedules\n".to_owned();
    }
    let mut out = String::new();
    for s in &schedules {
        out.push_str(&format!(
            "{} -> {}  {}  {}  catch_up={}\n",
            text(&s["name"]),
            text(&s["function"]),
            text(&s["expression"]),
            text(&s["timezone"]),
            text(&s["catch_up"]),
        ));
        let last = s["last_fired"].as_str().unwrap_or("never");
        out.push_str(&format!("  last fired: {last}\n"));
        let next: Vec<String> = s["next_local"]
            .as_array()
            .map(|times| times.iter().map(text).collect())
            .unwrap_or_default();
        if next.is_empty() {
            out.push_str("  next: none (a one-time schedule that has passed)\n");
        }
        for (i, time) in next.iter().enumerate() {
            let label = if i == 0 { "  next:" } else { "       " };
            out.push_str(&format!("{label} {time}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_render_with_their_next_times() {
        let listing = serde_json::json!({"schedules": [{
            "name": "nightly", "function": "report", "expression": "cron(0 2 * * *)",
            "timezone": "Europe/Berlin", "catch_up": "latest", "last_fired": null,
            "next_local": ["2026-12-01T02:00:00+01:00", "2026-12-02T02:00:00+01:00"],
        }]});
        assert_eq!(
            render(&listing),
            "nightly -> report  cron(0 2 * * *)  Europe/Berlin  catch_up=latest\n  last fired: never\n  next: 2026-12-01T02:00:00+01:00\n        2026-12-02T02:00:00+01:00\n"
        );
    }
}
