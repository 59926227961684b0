//! The nightly summary: on each tick of its schedule it reads the previous
//! day's orders (one partition of the `orders` table, page by page) and
//! stores their count and total in the `receipts` bucket as
//! `summaries/DAY.json`.

use nimbus_sdk::{Event, Handler, buckets, log, tables};
use serde_json::{Value, json};

struct Summary;

impl Handler for Summary {
    fn handle(ticks: Vec<Event>) -> Result<Vec<String>, String> {
        for tick in ticks {
            let data: Value = serde_json::from_slice(&tick.data).map_err(|e| e.to_string())?;
            let scheduled = data["scheduled_time"].as_str().unwrap_or("");
            let day = days::day_before(scheduled.get(..10).unwrap_or(""))
                .ok_or_else(|| format!("`{scheduled}` is not a time"))?;
            let (mut orders, mut total, mut after) = (0u64, 0u64, None::<String>);
            loop {
                let page = tables::query("orders", &day, None, after.as_deref(), 100)
                    .map_err(|e| format!("{e:?}"))?;
                for item in &page {
                    let order: Value = serde_json::from_str(&item.document).unwrap_or_default();
                    orders += 1;
                    total += order["amount"].as_u64().unwrap_or(0);
                }
                match page.last() {
                    Some(last) if page.len() == 100 => after = last.sort.clone(),
                    _ => break,
                }
            }
            let summary = json!({ "day": day, "orders": orders, "total": total });
            let key = format!("summaries/{day}.json");
            buckets::put(
                "receipts",
                &key,
                summary.to_string().as_bytes(),
                Some("application/json"),
            )
            .map_err(|e| format!("{e:?}"))?;
            log::info(&format!("stored {key}: {orders} orders, total {total}"));
        }
        Ok(Vec::new())
    }
}

nimbus_sdk::export_handler!(Summary);
