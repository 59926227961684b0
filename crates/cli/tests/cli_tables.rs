//! What people see from the list and show verbs: aligned tables with local
//! times (and their offset), sizes and durations with units; and the API's
//! JSON with `-o json`, for scripts.

mod support;

use nimbus_test_programs as programs;
use support::{Nimbus, TestApp, nimbus_bin};

/// Runs `nimbus ARGS --admin ...` in the time zone `tz`.
async fn run(nimbus: &Nimbus, tz: &str, args: &[&str]) -> String {
    let mut command = std::process::Command::new(nimbus_bin());
    command
        .args(args)
        .args(["--admin", &nimbus.admin])
        .env("NIMBUS_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .env("TZ", tz);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The cells of each line, split at runs of two or more spaces.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn list_verbs_print_tables_and_json_on_request() {
    let app = TestApp::new("tables").function(
        "hello",
        programs::HELLO,
        "\n[queue.jobs]\nvisibility_timeout_ms = 90000\n\n[bucket.files]\n",
    );
    let nimbus = app.start().await;
    let client = support::client();
    let sent = client
        .post(nimbus.admin_url("/v1/queues/jobs/messages"))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&serde_json::json!({ "body": "hi" }))
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success());
    let put = client
        .put(nimbus.admin_url("/v1/buckets/files/objects/docs/a.txt"))
        .bearer_auth(support::ADMIN_TOKEN)
        .body(vec![b'x'; 1536])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);

    // Counts of every queue, one row each, columns aligned under the header.
    let stats = run(&nimbus, "UTC", &["queue", "stats"]).await;
    let lines: Vec<&str> = stats.lines().collect();
    assert!(lines[0].starts_with("QUEUE "), "{stats}");
    let visible_at = lines[0].find("VISIBLE").unwrap();
    let jobs = lines
        .iter()
        .find(|l| l.starts_with("jobs "))
        .expect("a row for jobs");
    assert_eq!(&jobs[visible_at..visible_at + 1], "1", "{stats}");
    // One queue's settings, durations and sizes with units.
    let one = cells(&run(&nimbus, "UTC", &["queue", "stats", "jobs"]).await);
    assert!(
        one.contains(&vec![
            "visibility timeout".to_owned(),
            "1 min 30 s".to_owned()
        ]),
        "{one:?}"
    );
    assert!(
        one.contains(&vec!["max message size".to_owned(), "256.0 KiB".to_owned()]),
        "{one:?}"
    );

    // Objects with their size in units and the time in the local zone.
    let listed = cells(&run(&nimbus, "Asia/Kolkata", &["bucket", "ls", "files"]).await);
    assert_eq!(listed[0], ["KEY", "SIZE", "CONTENT TYPE", "LAST MODIFIED"]);
    assert_eq!(listed[1][0], "docs/a.txt");
    assert_eq!(listed[1][1], "1.5 KiB");
    assert!(listed[1][3].ends_with(" +05:30"), "{listed:?}");
    let prefixes = cells(
        &run(
            &nimbus,
            "UTC",
            &["bucket", "ls", "files", "--delimiter", "/"],
        )
        .await,
    );
    assert_eq!(prefixes[1][..2], ["docs/", "(prefix)"]);

    // The same listing as the API's JSON, with the time as stored.
    let json: serde_json::Value = serde_json::from_str(
        &run(
            &nimbus,
            "Asia/Kolkata",
            &["bucket", "ls", "files", "-o", "json"],
        )
        .await,
    )
    .expect("-o json prints JSON");
    assert_eq!(json["objects"][0]["size"], 1536);
    assert!(
        json["objects"][0]["last_modified"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // Verbs with nothing to list print their header only.
    let dlqs = run(&nimbus, "UTC", &["dlq", "list"]).await;
    assert_eq!(
        cells(&dlqs),
        [["DEAD-LETTER QUEUE", "FROM", "DEPTH", "OLDEST"]]
    );
}
