//! TLS to a real server: a private PostgreSQL taking TLS connections only
//! (`hostssl`, SCRAM passwords), whose certificate names only `localhost`
//! and is signed by a CA of its own. Every URL connects to 127.0.0.1; the
//! host it names is the one TLS verifies.

use nimbus_store::StoreError;
use nimbus_store::queue::{QueueConfig, QueueStore, SendMessage};
use nimbus_store_postgres::{PgOptions, PgStore};
use nimbus_test_postgres::{TlsServer, tls_server};

fn options(url: &str) -> PgOptions {
    PgOptions {
        url: url.to_owned(),
        relaxed_durability: false,
        pool_size: 2,
    }
}

/// A URL on a fresh schema, with the right password, the host name `host`
/// and `params` (each `&key=value`), tagged `app` so its connections can be
/// found in `pg_stat_ssl`.
fn url(server: &TlsServer, host: &str, app: &str, params: &str) -> String {
    let schema = server.fresh_schema();
    format!(
        "{}&application_name={app}{params}",
        server.url(host, Some(server.password()), &schema)
    )
}

fn root(path: std::path::PathBuf) -> String {
    format!("&sslrootcert={}", path.display())
}

/// Sends a message and receives it back.
async fn round_trip(store: &PgStore) {
    let queue = QueueConfig {
        name: "tls".to_owned(),
        visibility_timeout_ms: 30_000,
        retention_ms: 3_600_000,
        delay_ms: 0,
        max_message_bytes: 1024,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    };
    store.declare_queues(&[queue]).await.unwrap();
    let body = b"over TLS".to_vec();
    store
        .send(
            "tls",
            vec![SendMessage {
                body: body.clone(),
                ..SendMessage::default()
            }],
        )
        .await
        .unwrap();
    let received = store.receive("tls", 10, None).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, body);
    store
        .delete("tls", &received[0].receipt_handle)
        .await
        .unwrap();
}

/// This test's connections the server sees, how many use TLS, and how
/// many of those are the store's `LISTEN` connection.
fn connections(server: &TlsServer, app: &str) -> (u32, u32, u32) {
    let row = server.server().query(&format!(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl), \
         count(*) FILTER (WHERE s.ssl AND a.query LIKE 'LISTEN %') \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = '{app}'"
    ));
    let counts: Vec<u32> = row.split('|').map(|n| n.parse().unwrap()).collect();
    (counts[0], counts[1], counts[2])
}

async fn connect(url: &str) -> PgStore {
    PgStore::connect(&options(url), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn refused(url: &str) -> String {
    let error = PgStore::connect(&options(url), None)
        .await
        .expect_err("the connection must be refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    error.to_string()
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_the_pool_and_the_listener_and_a_message_goes_round_trip()
 {
    let server = tls_server();
    let app = "verify_full_right_ca";
    let store = connect(&url(
        server,
        "localhost",
        app,
        &format!("&sslmode=verify-full{}", root(server.ca_file())),
    ))
    .await;
    round_trip(&store).await;
    let (all, tls, listening) = connections(server, app);
    assert!(all >= 2, "{all} connections: the pool's and the listener's");
    assert_eq!(tls, all, "every connection uses TLS");
    assert_eq!(listening, 1, "the LISTEN connection uses TLS");
}

#[tokio::test]
async fn verify_full_with_another_ca_is_refused_as_the_certificate_cannot_be_verified() {
    let server = tls_server();
    let error = refused(&url(
        server,
        "localhost",
        "other_ca",
        &format!("&sslmode=verify-full{}", root(server.other_ca_file())),
    ))
    .await;
    assert!(
        error.contains("the server's certificate could not be verified")
            && error.contains("not signed by the certificates in sslrootcert"),
        "{error}"
    );
}

#[tokio::test]
async fn verify_full_to_an_address_the_certificate_does_not_name_fails_the_host_name_check() {
    let server = tls_server();
    let error = refused(&url(
        server,
        "127.0.0.1",
        "verify_full_ip",
        &format!("&sslmode=verify-full{}", root(server.ca_file())),
    ))
    .await;
    assert!(
        error.contains("the server's certificate could not be verified")
            && error.contains("not issued for the host name `127.0.0.1`"),
        "{error}"
    );
}

#[tokio::test]
async fn verify_ca_to_that_address_checks_only_the_chain_and_connects() {
    let server = tls_server();
    let store = connect(&url(
        server,
        "127.0.0.1",
        "verify_ca_ip",
        &format!("&sslmode=verify-ca{}", root(server.ca_file())),
    ))
    .await;
    round_trip(&store).await;
}

#[tokio::test]
async fn verify_ca_with_another_ca_is_refused() {
    let server = tls_server();
    let error = refused(&url(
        server,
        "127.0.0.1",
        "verify_ca_other",
        &format!("&sslmode=verify-ca{}", root(server.other_ca_file())),
    ))
    .await;
    assert!(
        error.contains("the server's certificate could not be verified"),
        "{error}"
    );
}

#[tokio::test]
async fn require_connects_encrypted_without_a_ca() {
    let server = tls_server();
    let app = "require_no_ca";
    // 127.0.0.1: a name the certificate does not hold, which require does
    // not check.
    let store = connect(&url(server, "127.0.0.1", app, "&sslmode=require")).await;
    round_trip(&store).await;
    let (all, tls, listening) = connections(server, app);
    assert!(all >= 2 && tls == all, "{tls} of {all} connections use TLS");
    assert_eq!(listening, 1, "the LISTEN connection uses TLS");
}

#[tokio::test]
async fn require_with_sslrootcert_checks_the_chain_as_libpq_does() {
    let server = tls_server();
    let error = refused(&url(
        server,
        "localhost",
        "require_other_ca",
        &format!("&sslmode=require{}", root(server.other_ca_file())),
    ))
    .await;
    assert!(
        error.contains("the server's certificate could not be verified"),
        "{error}"
    );
}

#[tokio::test]
async fn prefer_uses_tls_when_the_server_offers_it() {
    let server = tls_server();
    let app = "prefer";
    let store = connect(&url(server, "localhost", app, "&sslmode=prefer")).await;
    round_trip(&store).await;
    let (all, tls, listening) = connections(server, app);
    assert!(all >= 2 && tls == all, "{tls} of {all} connections use TLS");
    assert_eq!(listening, 1, "the LISTEN connection uses TLS");
}

#[tokio::test]
async fn disable_against_a_hostssl_only_server_is_refused() {
    let server = tls_server();
    let error = refused(&url(server, "localhost", "disable", "&sslmode=disable")).await;
    assert!(
        error.contains("refused the connection") && error.contains("no encryption"),
        "{error}"
    );
}

#[tokio::test]
async fn no_sslmode_means_a_plain_connection_which_this_server_refuses() {
    let server = tls_server();
    let error = refused(&url(server, "localhost", "default", "")).await;
    assert!(error.contains("no encryption"), "{error}");
}

#[tokio::test]
async fn sslrootcert_system_trusts_the_public_cas_which_did_not_sign_this_certificate() {
    let server = tls_server();
    let error = refused(&url(
        server,
        "localhost",
        "system_roots",
        "&sslrootcert=system",
    ))
    .await;
    assert!(
        error.contains("not signed by the public certificate authorities"),
        "{error}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_error_shows_neither_password_nor_url() {
    let server = tls_server();
    let schema = server.fresh_schema();
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let url = format!(
        "{}&sslmode=verify-full{}",
        server.url("localhost", Some(&wrong), &schema),
        root(server.ca_file())
    );
    let error = refused(&url).await;
    assert!(error.contains("password authentication failed"), "{error}");
    for secret in [wrong.as_str(), server.password(), url.as_str()] {
        assert!(!error.contains(secret), "{error} shows {secret}");
    }
}

#[tokio::test]
async fn channel_binding_can_be_required_over_tls() {
    let server = tls_server();
    // SCRAM-SHA-256-PLUS: the password proof is bound to this TLS session
    // through the server certificate's hash.
    let store = connect(&url(
        server,
        "localhost",
        "channel_binding",
        &format!(
            "&sslmode=verify-full{}&channel_binding=require",
            root(server.ca_file())
        ),
    ))
    .await;
    round_trip(&store).await;
}

#[tokio::test]
async fn the_key_value_form_takes_sslmode_and_sslrootcert_too() {
    let server = tls_server();
    let schema = server.fresh_schema();
    let url = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=nimbus password='{}' dbname=nimbus \
         sslmode=verify-full sslrootcert='{}' options='-c search_path={schema}'",
        server.port(),
        server.password(),
        server.ca_file().display()
    );
    let store = connect(&url).await;
    round_trip(&store).await;
}
