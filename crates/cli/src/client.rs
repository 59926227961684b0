//! A small client for the admin `/v1` API, used by the service verbs
//! (`nimbus queue ...`, `nimbus dlq ...`, `nimbus secret ...`,
//! `nimbus schedule ...`).

use anyhow::{Context as _, bail};
use serde_json::Value;

pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl AdminClient {
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the async runtime")?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
            http: reqwest::Client::new(),
            runtime,
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(Body::Json(body)))
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None)
    }

    /// GETs a text (not JSON) answer, such as `/metrics`.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        match self.get(path)? {
            Value::String(text) => Ok(text),
            other => Ok(other.to_string()),
        }
    }

    /// POSTs raw bytes (not JSON).
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(Body::Raw(body)))
    }

    /// PUTs raw bytes (not JSON).
    pub fn put_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(Body::Raw(body)))
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the API's
    /// message and status.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self.http.request(method, &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match body {
                Some(Body::Json(json)) => {
                    request = request
                        .header("content-type", "application/json")
                        .body(json.to_string());
                }
                Some(Body::Raw(bytes)) => request = request.body(bytes),
                None => {}
            }
            let response = request.send().await.with_context(|| {
                format!(
                    "failed to reach the admin API at {url}; is `nimbus up` running? (see --admin)"
                )
            })?;
            let status = response.status();
            let text = response
                .text()
                .await
                .context("failed to read the admin API's answer")?;
            let json: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if !status.is_success() {
                let message = json["error"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| json.to_string());
                bail!("{message} ({status})");
            }
            Ok(json)
        })
    }
}

/// A raw answer: headers and bytes, for object bodies that are not JSON.
pub struct RawAnswer {
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl AdminClient {
    /// Sends a request with raw bytes and extra headers and returns the raw
    /// answer; a non-2xx answer becomes an error carrying the API's message.
    pub fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<RawAnswer> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self.http.request(method, &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(bytes) = body {
                request = request.body(bytes);
            }
            let response = request.send().await.with_context(|| {
                format!(
                    "failed to reach the admin API at {url}; is `nimbus up` running? (see --admin)"
                )
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .context("failed to read the admin API's answer")?
                .to_vec();
            if !status.is_success() {
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let message = json["error"].as_str().unwrap_or("request failed");
                bail!("{message} ({status})");
            }
            Ok(RawAnswer { headers, body })
        })
    }
}

/// Longest line a streamed answer may carry before it is an error.
const MAX_STREAMED_LINE_BYTES: usize = 4 * 1024 * 1024;

impl AdminClient {
    /// GETs a newline-delimited answer and hands each line to `line` as it
    /// arrives, until the server ends the stream.
    pub fn get_lines(&self, path: &str, mut line: impl FnMut(&str)) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self.http.get(&url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let mut response = request.send().await.with_context(|| {
                format!(
                    "failed to reach the admin API at {url}; is `nimbus up` running? (see --admin)"
                )
            })?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                let message = json["error"].as_str().map(str::to_owned);
                bail!("{} ({status})", message.unwrap_or_else(|| json.to_string()));
            }
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .context("the admin API's stream broke off")?
            {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let rest = pending.split_off(end + 1);
                    line(String::from_utf8_lossy(&pending[..end]).trim_end());
                    pending = rest;
                }
                if pending.len() > MAX_STREAMED_LINE_BYTES {
                    bail!("the admin API sent a line over {MAX_STREAMED_LINE_BYTES} bytes");
                }
            }
            if !pending.is_empty() {
                line(String::from_utf8_lossy(&pending).trim_end());
            }
            Ok(())
        })
    }
}

impl AdminClient {
    /// `GET /v1/schedules`: every schedule with its `next` fire times.
    pub fn schedules(&self, next: u32) -> anyhow::Result<Value> {
        self.get(&format!("/v1/schedules?next={next}"))
    }
}

enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

/// Percent-encodes one path segment.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
