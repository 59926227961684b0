//! Handles batches of messages from the `tasks` queue: each one is recorded
//! in the `tasks` table under its message id. A message that cannot be
//! recorded is reported as failed, so only it is retried (and after the
//! queue's `max_receive_count`, moved to `tasks-failed`).

use nimbus_sdk::tables::{self, PutCondition};
use nimbus_sdk::{Event, Handler, log};

struct Worker;

impl Handler for Worker {
    fn handle(events: Vec<Event>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for event in events {
            let body = String::from_utf8_lossy(&event.data);
            let task = serde_json::json!({ "id": event.id, "body": body });
            match tables::put("tasks", &task.to_string(), PutCondition::Always) {
                Ok(_) => log::info(&format!("recorded task {}: {body}", event.id)),
                Err(e) => {
                    log::warn(&format!("cannot record task {}: {e:?}", event.id));
                    failed.push(event.id);
                }
            }
        }
        Ok(failed)
    }
}

nimbus_sdk::export_handler!(Worker);
