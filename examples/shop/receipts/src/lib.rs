//! Reads the `orders` table's change stream: for each new order it stores a
//! text receipt in the `receipts` bucket (`receipts/DAY/ID.txt`). Other
//! changes (an order marked receipted) need nothing. A receipt it cannot
//! store is reported failed, so only that record is retried.

use nimbus_sdk::{Event, Handler, buckets, log};
use serde_json::Value;

struct Receipts;

impl Handler for Receipts {
    fn handle(changes: Vec<Event>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for change in changes {
            let record: Value = serde_json::from_slice(&change.data).map_err(|e| e.to_string())?;
            if record["event_name"] != "INSERT" {
                continue;
            }
            let order = &record["new_image"];
            let (day, id) = (
                order["day"].as_str().unwrap_or(""),
                order["id"].as_str().unwrap_or(""),
            );
            let receipt = format!(
                "Receipt {id}\nDay: {day}\nCustomer: {}\nItem: {}\nAmount: {}\n",
                order["customer"].as_str().unwrap_or(""),
                order["item"].as_str().unwrap_or(""),
                order["amount"],
            );
            let key = format!("receipts/{day}/{id}.txt");
            match buckets::put("receipts", &key, receipt.as_bytes(), Some("text/plain")) {
                Ok(_) => log::info(&format!("stored {key}")),
                Err(e) => {
                    log::error(&format!("could not store {key}: {e:?}"));
                    failed.push(change.id);
                }
            }
        }
        Ok(failed)
    }
}

nimbus_sdk::export_handler!(Receipts);
