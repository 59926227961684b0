//! The public gateway through a real `nimbus up` and a real HTTP client:
//! routing, path parameters, request reflection, and routing statuses.

mod support;

use nimbus_test_programs as programs;
use support::{TestApp, client, get_text, invocation_id, raw_request};

#[tokio::test]
async fn hello_answers_with_its_configured_environment() {
    let app = TestApp::new("hello")
        .function("hello", programs::HELLO, "env = { GREETING = \"bonjour\" }")
        .route("/hello/{name}", "hello", "methods = [\"GET\"]");
    let nimbus = app.start().await;
    let response = client()
        .get(nimbus.url("/hello/world"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = invocation_id(&response);
    assert_eq!(response.text().await.unwrap(), "bonjour, world\n");
    // The function's stdout reaches the log, tagged with name and invocation id.
    let line = nimbus
        .stderr
        .wait_for("with the function's stdout", |l| {
            l.contains("hello handled /hello/world")
        })
        .await;
    assert!(
        line.contains("function=hello") && line.contains(&id),
        "{line}"
    );
}

#[tokio::test]
async fn echo_sees_method_path_query_headers_and_body() {
    let app = TestApp::new("echo")
        .function("echo", programs::ECHO, "")
        .route("/echo/...", "echo", "");
    let nimbus = app.start().await;
    let response = client()
        .put(nimbus.url("/echo/a/b?x=1&y=two"))
        .header("x-custom", "value-1")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echoed["method"], "PUT");
    assert_eq!(echoed["path"], "/echo/a/b");
    assert_eq!(echoed["query"], "x=1&y=two");
    assert_eq!(echoed["body"], "the body");
    let headers = echoed["headers"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_owned())
    };
    assert_eq!(header("x-custom").as_deref(), Some("value-1"));
    assert_eq!(header("x-nimbus-path-rest").as_deref(), Some("a/b"));
    assert_eq!(header("x-nimbus-route").as_deref(), Some("/echo/..."));
}

#[tokio::test]
async fn path_parameters_and_the_rest_reach_the_function_as_headers() {
    let app = TestApp::new("params")
        .function("params", programs::PARAMS, "")
        .route("/users/{user}/posts/{post}", "params", "")
        .route("/files/{bucket}/...", "params", "");
    let nimbus = app.start().await;
    let text = |path: &str| get_text(nimbus.url(path));
    assert_eq!(
        text("/users/ada/posts/42").await,
        "post=42\nroute=/users/{user}/posts/{post}\nuser=ada\n"
    );
    assert_eq!(
        text("/files/photos/2024/cat%20pic.png").await,
        "...=2024/cat%20pic.png\nbucket=photos\nroute=/files/{bucket}/...\n"
    );
    assert_eq!(
        text("/files/photos").await,
        "...=\nbucket=photos\nroute=/files/{bucket}/...\n"
    );
}

#[tokio::test]
async fn clients_cannot_forge_nimbus_headers() {
    let app = TestApp::new("forge")
        .function("params", programs::PARAMS, "")
        .route("/u/{id}", "params", "");
    let nimbus = app.start().await;
    let text = client()
        .get(nimbus.url("/u/7"))
        .header("x-nimbus-param-id", "forged")
        .header("x-nimbus-param-admin", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "id=7\nroute=/u/{id}\n");
}

#[tokio::test]
async fn specific_routes_win_over_parameters_and_wildcards() {
    let app = TestApp::new("precedence")
        .function("hello", programs::HELLO, "env = { GREETING = \"literal\" }")
        .function("params", programs::PARAMS, "")
        .function("echo", programs::ECHO, "")
        .route("/...", "echo", "")
        .route("/items/{id}", "params", "")
        .route("/items/special", "hello", "");
    let nimbus = app.start().await;
    let get = |path: &str| get_text(nimbus.url(path));
    assert_eq!(get("/items/special").await, "literal, world\n");
    assert_eq!(get("/items/9").await, "id=9\nroute=/items/{id}\n");
    assert!(
        get("/items/9/more")
            .await
            .contains("\"path\":\"/items/9/more\"")
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_are_405_with_allow() {
    let app = TestApp::new("statuses")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "methods = [\"GET\", \"POST\"]");
    let nimbus = app.start().await;

    let missing = client()
        .get(nimbus.url("/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("/nothing/here"));

    let wrong = client().delete(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET, HEAD, POST");

    let right = client().post(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn bodies_over_the_route_limit_are_413_whether_declared_or_streamed() {
    let app = TestApp::new("bodies")
        .function("echo", programs::ECHO, "")
        .route("/small", "echo", "max_body_bytes = 16");
    let nimbus = app.start().await;

    let declared = client()
        .post(nimbus.url("/small"))
        .body("x".repeat(17))
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    assert!(declared.text().await.unwrap().contains("16 bytes"));

    // A chunked body carries no Content-Length; the limit applies as it streams.
    let chunks = futures_stream(vec!["0123456789".to_owned(); 3]);
    let streamed = client()
        .post(nimbus.url("/small"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);

    let fits = client()
        .post(nimbus.url("/small"))
        .body("x".repeat(16))
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
}

fn futures_stream(
    chunks: Vec<String>,
) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn a_component_built_without_nimbus_code_runs_unmodified() {
    let app = TestApp::new("plain")
        .function("plain", programs::WSTD_HELLO, "")
        .route("/plain/...", "plain", "");
    let nimbus = app.start().await;
    let response = client()
        .get(nimbus.url("/plain/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "wstd says hello to /plain/anything\n"
    );
}

#[tokio::test]
async fn the_gateway_speaks_http2_without_tls() {
    let app = TestApp::new("h2c")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2.get(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "hello, world\n");
}

#[tokio::test]
async fn head_is_answered_wherever_get_is_allowed() {
    let app = TestApp::new("head")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "methods = [\"GET\"]");
    let nimbus = app.start().await;
    let response = client().head(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn dot_segments_and_empty_segments_are_refused_before_routing() {
    let app = TestApp::new("dots")
        .function("echo", programs::ECHO, "")
        .route("/static/...", "echo", "");
    let nimbus = app.start().await;
    let host = nimbus.gateway.trim_start_matches("http://").to_owned();
    for path in [
        "/static/../admin",
        "/static/./x",
        "/static/%2e%2E/admin",
        "/static//x",
    ] {
        // Sent raw: HTTP clients normalise dot segments away themselves.
        let response = raw_request(
            &host,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
    }
    assert_eq!(
        client()
            .get(nimbus.url("/static/a.b/..c"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_host_header_that_is_not_text_is_a_400() {
    let app = TestApp::new("host")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start().await;
    let host = nimbus.gateway.trim_start_matches("http://").to_owned();
    let response = raw_request(
        &host,
        b"GET /hello HTTP/1.1\r\nHost: caf\xe9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Host header"), "{response}");
}

#[tokio::test]
async fn every_request_gets_a_fresh_instance() {
    let app = TestApp::new("fresh")
        .function("counter", programs::COUNTER, "")
        .route("/count", "counter", "");
    let nimbus = app.start().await;
    for _ in 0..5 {
        let response = client().get(nimbus.url("/count")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "1\n");
    }
}
