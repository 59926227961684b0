//! Told of each receipt uploaded to the `receipts` bucket: marks its order
//! `receipted`, with a conditional write so a concurrent change is never
//! overwritten (a conflict fails the event, which is then retried).

use nimbus_sdk::tables::{self, PutCondition};
use nimbus_sdk::{Event, Handler, log};
use serde_json::Value;

struct Notifier;

impl Handler for Notifier {
    fn handle(uploads: Vec<Event>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for upload in uploads {
            let object: Value = serde_json::from_slice(&upload.data).map_err(|e| e.to_string())?;
            let key = object["key"].as_str().unwrap_or("");
            // receipts/DAY/ID.txt
            let Some((day, id)) = key
                .strip_prefix("receipts/")
                .and_then(|rest| rest.strip_suffix(".txt"))
                .and_then(|rest| rest.split_once('/'))
            else {
                log::warn(&format!("{key} is not a receipt"));
                continue;
            };
            let marked = tables::get("orders", day, Some(id)).and_then(|item| {
                let Some(item) = item else { return Ok(false) };
                let mut order: Value = serde_json::from_str(&item.document).unwrap_or_default();
                order["status"] = "receipted".into();
                order["receipt"] = key.into();
                tables::put(
                    "orders",
                    &order.to_string(),
                    PutCondition::IfVersion(item.version),
                )
                .map(|_| true)
            });
            match marked {
                Ok(true) => log::info(&format!("order {day}/{id} receipted")),
                Ok(false) => log::warn(&format!("no order {day}/{id} for {key}")),
                Err(e) => {
                    log::warn(&format!("could not mark {day}/{id}: {e:?}"));
                    failed.push(upload.id);
                }
            }
        }
        Ok(failed)
    }
}

nimbus_sdk::export_handler!(Notifier);
