//! Handles a batch of orders. An order it cannot read (one containing
//! "poison") is reported as failed; only that one is retried, and after the
//! queue's `max_receive_count` it moves to the dead-letter queue.

use nimbus_sdk::{Event, Handler, log};

struct Worker;

impl Handler for Worker {
    fn handle(orders: Vec<Event>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for order in orders {
            let text = String::from_utf8_lossy(&order.data);
            if text.contains("poison") {
                log::warn(&format!("cannot handle order {} (attempt {})", order.id, order.attempt));
                failed.push(order.id);
            } else {
                log::info(&format!("fulfilled order {}: {text}", order.id));
            }
        }
        Ok(failed)
    }
}

nimbus_sdk::export_handler!(Worker);
