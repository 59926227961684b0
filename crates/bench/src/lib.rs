//! What the open-loop latency senders share: a client presenting the admin
//! token, and the loop that issues one request per tick at a fixed rate and
//! prints `lat-N ACK_MICROS` (wall clock, Unix epoch) for each acknowledged
//! one, so the benchmark scripts can match acknowledgements to the server's
//! log stamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A client sending `Authorization: Bearer $NIMBUS_ADMIN_TOKEN`.
pub fn admin_client() -> reqwest::Client {
    let token = std::env::var("NIMBUS_ADMIN_TOKEN").expect("set NIMBUS_ADMIN_TOKEN");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Issues `request(n)` for n in 0..count at `rate` per second (not waiting
/// for answers, so a slow answer does not slow the rate) and prints
/// `lat-N ACK_MICROS` for each that succeeded, in order of N.
pub async fn open_loop(
    count: usize,
    rate: u64,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(count);
    for n in 0..count {
        tick.tick().await;
        let request = request(n);
        sent.push(tokio::spawn(async move {
            let response = request.send().await.ok()?;
            let acked = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
            response
                .status()
                .is_success()
                .then(|| format!("lat-{n} {}", acked.as_micros()))
        }));
    }
    for request in sent {
        if let Ok(Some(line)) = request.await {
            println!("{line}");
        }
    }
}
