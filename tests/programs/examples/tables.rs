//! An event function for table tests. Change records (events of type
//! `nimbus.table.*`) are printed one line each (`stream seq=.. kind=..
//! key=.. attempt=.. batch=.. trace=..`); a record whose new image has
//! `"action": "fail"` is reported failed and `"action": "error"` fails the
//! batch. Other events carry a command: `put:TABLE:JSON`,
//! `put-if-absent:TABLE:JSON`, `get:TABLE:PK`, `delete:TABLE:PK` or
//! `query:TABLE:PK:PREFIX`, whose result is printed.

use nimbus_sdk::tables::{self, PutCondition};
use nimbus_sdk::{Event, Handler};

struct Program;

impl Handler for Program {
    fn handle(events: Vec<Event>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for event in &events {
            let data = String::from_utf8_lossy(&event.data).into_owned();
            if event.type_.starts_with("nimbus.table.") {
                let record: serde_json::Value =
                    serde_json::from_str(&data).map_err(|e| e.to_string())?;
                let keys = &record["keys"];
                println!(
                    "stream seq={} kind={} key={}/{} attempt={} batch={} trace={}",
                    record["sequence"],
                    record["event_name"].as_str().unwrap_or("?"),
                    keys["partition"].as_str().unwrap_or(""),
                    keys["sort"].as_str().unwrap_or(""),
                    event.attempt,
                    events.len(),
                    event.traceparent.as_deref().unwrap_or("-"),
                );
                match record["new_image"]["action"].as_str() {
                    Some("fail") => failed.push(event.id.clone()),
                    Some("error") => return Err("asked to fail the batch".to_owned()),
                    _ => {}
                }
                continue;
            }
            let parts: Vec<&str> = data.splitn(3, ':').collect();
            let result = match parts.as_slice() {
                ["put", table, doc] => {
                    tables::put(table, doc, PutCondition::Always).map(|v| format!("version {v}"))
                }
                ["put-if-absent", table, doc] => {
                    tables::put(table, doc, PutCondition::IfAbsent).map(|v| format!("version {v}"))
                }
                ["get", table, pk] => tables::get(table, pk, None).map(|item| match item {
                    Some(item) => format!("item {} v{}", item.document, item.version),
                    None => "no item".to_owned(),
                }),
                ["delete", table, pk] => {
                    tables::delete(table, pk, None).map(|existed| format!("deleted {existed}"))
                }
                ["query", table, rest] => {
                    let (pk, prefix) = rest.split_once(':').unwrap_or((rest, ""));
                    let prefix = (!prefix.is_empty()).then_some(prefix);
                    tables::query(table, pk, prefix, None, 100).map(|items| {
                        let sorts: Vec<String> =
                            items.into_iter().filter_map(|i| i.sort).collect();
                        format!("sorts {}", sorts.join(","))
                    })
                }
                _ => continue,
            };
            match result {
                Ok(text) => println!("table ok {text}"),
                Err(e) => println!("table error {e:?}"),
            }
        }
        Ok(failed)
    }
}

nimbus_sdk::export_handler!(Program);
