//! An event function that keeps a ledger of what it handled, for tests that
//! count deliveries across processes: whatever the trigger, it prints one
//! line per event, and `batch begin at=US` before them and `batch end
//! at=US` after (wall-clock microseconds since the epoch), so a test can
//! tell which invocations ran at the same time. Event lines: `record seq=..
//! key=.. version=.. write=.. attempt=..` for a table change record (`write`
//! is the new image's `write` field), `tick time=.. id=.. attempt=..` for a
//! schedule tick (its scheduled time), `object key=.. etag=.. id=..
//! attempt=..` for an object event, else `event data=.. id=.. attempt=..`
//! (the payload as text). It never fails an event.

use nimbus_sdk::{Event, Handler};
use std::time::{SystemTime, UNIX_EPOCH};

struct Program;

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

impl Handler for Program {
    fn handle(events: Vec<Event>) -> Result<Vec<String>, String> {
        println!("batch begin at={} n={}", now_us(), events.len());
        for event in &events {
            let data = String::from_utf8_lossy(&event.data);
            let (id, attempt) = (&event.id, event.attempt);
            if event.type_.starts_with("nimbus.table.") {
                let record: serde_json::Value =
                    serde_json::from_str(&data).map_err(|e| e.to_string())?;
                println!(
                    "record seq={} key={} version={} write={} attempt={attempt}",
                    record["sequence"],
                    record["keys"]["partition"].as_str().unwrap_or(""),
                    record["version"],
                    record["new_image"]["write"].as_str().unwrap_or("-"),
                );
            } else if event.type_ == "nimbus.schedule.tick" {
                let tick: serde_json::Value =
                    serde_json::from_str(&data).map_err(|e| e.to_string())?;
                let time = tick["scheduled_time"].as_str().unwrap_or("-");
                println!("tick time={time} id={id} attempt={attempt}");
            } else if event.type_.starts_with("nimbus.object.") {
                let object: serde_json::Value =
                    serde_json::from_str(&data).map_err(|e| e.to_string())?;
                println!(
                    "object key={} etag={} id={id} attempt={attempt}",
                    object["key"].as_str().unwrap_or("-"),
                    object["etag"].as_str().unwrap_or("-"),
                );
            } else {
                println!("event data={data} id={id} attempt={attempt}");
            }
        }
        println!("batch end at={}", now_us());
        Ok(Vec::new())
    }
}

nimbus_sdk::export_handler!(Program);
