//! Open-loop sender for `bench/latency.sh`: sends COUNT messages `lat-N` to a
//! queue through the admin API at RATE per second and prints, for each
//! acknowledged one, `lat-N ACK_MICROS` (wall clock, Unix epoch).
//!
//! `queue-send ADMIN_URL QUEUE COUNT RATE`, with the admin token in
//! `NIMBUS_ADMIN_TOKEN`.

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [admin, queue, count, rate] = args.as_slice() else {
        panic!("usage: queue-send ADMIN_URL QUEUE COUNT RATE");
    };
    let url = format!("{admin}/v1/queues/{queue}/messages");
    let client = nimbus_bench::admin_client();
    nimbus_bench::open_loop(count.parse().unwrap(), rate.parse().unwrap(), |n| {
        client.post(&url).body(format!("{{\"body\":\"lat-{n}\"}}"))
    })
    .await;
}
