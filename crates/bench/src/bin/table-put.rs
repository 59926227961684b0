//! Open-loop writer for `bench/stream-latency.sh`: puts COUNT items
//! `{"customer": "lat-N"}` into a table through the admin API at RATE per
//! second and prints, for each acknowledged one, `lat-N ACK_MICROS` (wall
//! clock, Unix epoch).
//!
//! `table-put ADMIN_URL TABLE COUNT RATE`, with the admin token in
//! `NIMBUS_ADMIN_TOKEN`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [admin, table, count, rate] = args.as_slice() else {
        panic!("usage: table-put ADMIN_URL TABLE COUNT RATE");
    };
    let count: usize = count.parse().unwrap();
    let rate: u64 = rate.parse().unwrap();
    let url = format!("{admin}/v1/tables/{table}/items");
    let token = std::env::var("NIMBUS_ADMIN_TOKEN").expect("set NIMBUS_ADMIN_TOKEN");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut puts = Vec::with_capacity(count);
    for i in 0..count {
        tick.tick().await;
        let (client, url) = (client.clone(), url.clone());
        puts.push(tokio::spawn(async move {
            let body = format!("{{\"item\":{{\"customer\":\"lat-{i}\"}}}}");
            let response = client.post(&url).body(body).send().await.ok()?;
            let acked = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_micros();
            response.status().is_success().then_some((i, acked))
        }));
    }
    for put in puts {
        if let Ok(Some((i, acked))) = put.await {
            println!("lat-{i} {acked}");
        }
    }
}
