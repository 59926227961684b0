//! An event function (exports `nimbus:function/handler`) driven by each
//! event's data: `fail` reports the event as failed, `trap` panics, `error`
//! fails the batch, `send:QUEUE:BODY` sends to a queue, `sleep:MS` takes that
//! long (printing `sleeping` first and `woke` after), `invoke:FN:DATA` and
//! `invoke-async:FN:DATA` invoke another function, `secret:NAME` reads a
//! secret and prints its length and FNV-1a hash (never the value),
//! `put:BUCKET:KEY=BODY`, `get:BUCKET:KEY`, `delete:BUCKET:KEY` and
//! `list:BUCKET:PREFIX` use a bucket and print what came back; an event
//! whose subject (an object key, or a schedule's name) contains `fail` is
//! reported failed; every
//! event is printed so tests can see what was delivered, how often and in
//! which batch.

use nimbus_sdk::{Event, Handler, buckets, functions, log, queue, secrets};

struct Program;

impl Handler for Program {
    fn handle(events: Vec<Event>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for event in &events {
            let data = String::from_utf8_lossy(&event.data).into_owned();
            println!(
                "handled data={data} attempt={} batch={} source={} type={} id={}",
                event.attempt,
                events.len(),
                event.source,
                event.type_,
                event.id
            );
            if let Some(subject) = &event.subject {
                println!("subject={subject} id={}", event.id);
                if subject.contains("fail") {
                    failed.push(event.id.clone());
                    continue;
                }
            }
            let parts: Vec<&str> = data.splitn(3, ':').collect();
            match parts.as_slice() {
                ["fail"] => failed.push(event.id.clone()),
                ["trap"] => panic!("asked to trap"),
                ["error"] => return Err("asked to fail the whole batch".to_owned()),
                ["sleep", ms] => {
                    println!("sleeping id={}", event.id);
                    let ms: u64 = ms.parse().unwrap_or(0);
                    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                    println!("woke id={}", event.id);
                }
                ["send", target, body] => match queue::send(target, body.as_bytes()) {
                    Ok(id) => log::info(&format!("sent {id} to {target}")),
                    Err(e) => log::error(&format!("send to {target} failed: {e:?}")),
                },
                ["secret", name] => match secrets::get(name) {
                    Ok(value) => println!(
                        "secret {name} len={} fnv1a={:016x}",
                        value.len(),
                        fnv1a(&value)
                    ),
                    Err(e) => println!("secret {name} error={e:?}"),
                },
                ["invoke", target, data] => match functions::invoke(target, data.as_bytes()) {
                    Ok(()) => log::info(&format!("invoked {target}")),
                    Err(e) => log::error(&format!("invoke of {target} failed: {e:?}")),
                },
                ["invoke-async", target, data] => {
                    match functions::invoke_async(target, data.as_bytes()) {
                        Ok(id) => log::info(&format!("queued {id} for {target}")),
                        Err(e) => log::error(&format!("async invoke of {target} failed: {e:?}")),
                    }
                }
                ["put", bucket, rest] => {
                    let (key, body) = rest.split_once('=').unwrap_or((rest, ""));
                    match buckets::put(bucket, key, body.as_bytes(), Some("text/plain")) {
                        Ok(o) => println!("bucket put {bucket}/{} size={} etag={}", o.key, o.size, o.etag),
                        Err(e) => println!("bucket put {bucket}/{key} error={e:?}"),
                    }
                }
                ["get", bucket, key] => match buckets::get(bucket, key) {
                    Ok(bytes) => println!(
                        "bucket get {bucket}/{key} body={}",
                        String::from_utf8_lossy(&bytes)
                    ),
                    Err(e) => println!("bucket get {bucket}/{key} error={e:?}"),
                },
                ["delete", bucket, key] => match buckets::delete(bucket, key) {
                    Ok(existed) => println!("bucket delete {bucket}/{key} existed={existed}"),
                    Err(e) => println!("bucket delete {bucket}/{key} error={e:?}"),
                },
                ["list", bucket, prefix] => match buckets::list(bucket, prefix, None) {
                    Ok(objects) => {
                        let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
                        println!("bucket list {bucket}/{prefix} keys={}", keys.join(","))
                    }
                    Err(e) => println!("bucket list {bucket}/{prefix} error={e:?}"),
                },
                _ => {}
            }
        }
        Ok(failed)
    }
}

/// 64-bit FNV-1a: proves which value was read without printing it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

nimbus_sdk::export_handler!(Program);
