//! Open-loop writer for `bench/stream-latency.sh`: puts COUNT items
//! `{"customer": "lat-N"}` into a table through the admin API at RATE per
//! second and prints, for each acknowledged one, `lat-N ACK_MICROS` (wall
//! clock, Unix epoch).
//!
//! `table-put ADMIN_URL TABLE COUNT RATE`, with the admin token in
//! `NIMBUS_ADMIN_TOKEN`.

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [admin, table, count, rate] = args.as_slice() else {
        panic!("usage: table-put ADMIN_URL TABLE COUNT RATE");
    };
    let url = format!("{admin}/v1/tables/{table}/items");
    let client = nimbus_bench::admin_client();
    nimbus_bench::open_loop(count.parse().unwrap(), rate.parse().unwrap(), |n| {
        client
            .post(&url)
            .body(format!("{{\"item\":{{\"customer\":\"lat-{n}\"}}}}"))
    })
    .await;
}
