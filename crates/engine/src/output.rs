//! Function stdout and stderr: each line goes to the server log, tagged with
//! the function and invocation id, until the invocation's byte budget runs out.
//! Lines are also kept (up to the record's bound) for the invocation's
//! history record, and published to live followers.

use crate::history::{History, LiveLine, MAX_RECORD_LOG_BYTES};
use bytes::Bytes;
use nimbus_store::LogLine;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which of the guest's output streams a line came from.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Shared by an invocation's stdout and stderr: the bytes it may still log;
/// and what else its record collects while it runs (the bytes it sends out).
pub struct OutputBudget {
    function: Arc<str>,
    invocation_id: Arc<str>,
    history: Arc<History>,
    state: Mutex<BudgetState>,
    /// Bytes of outbound HTTP request bodies sent so far, for usage.
    outbound_bytes: std::sync::atomic::AtomicU64,
}

struct BudgetState {
    remaining: u64,
    truncated: bool,
    /// Lines kept for the record, and the bytes they may still take.
    kept: Vec<LogLine>,
    keep_remaining: u64,
    kept_truncated: bool,
}

impl std::fmt::Debug for OutputBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputBudget")
            .field("function", &self.function)
            .field("invocation_id", &self.invocation_id)
            .finish_non_exhaustive()
    }
}

impl OutputBudget {
    pub fn new(
        function: Arc<str>,
        invocation_id: Arc<str>,
        max_bytes: u64,
        history: Arc<History>,
    ) -> Arc<Self> {
        Arc::new(OutputBudget {
            function,
            invocation_id,
            history,
            state: Mutex::new(BudgetState {
                remaining: max_bytes,
                truncated: false,
                kept: Vec::new(),
                keep_remaining: max_bytes.min(MAX_RECORD_LOG_BYTES),
                kept_truncated: false,
            }),
            outbound_bytes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Counts `n` bytes sent out over outbound HTTP.
    pub fn count_outbound(&self, n: u64) {
        self.outbound_bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes sent out over outbound HTTP so far.
    pub fn outbound_bytes(&self) -> u64 {
        self.outbound_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps a line that was logged for the record (while the record's bound
    /// allows) and hands it to live followers.
    pub fn keep(&self, stream: &str, text: &str) {
        {
            let mut state = self.state.lock().unwrap();
            let cost = text.len() as u64 + 1;
            if !state.kept_truncated && cost <= state.keep_remaining {
                state.keep_remaining -= cost;
                state.kept.push(LogLine {
                    stream: stream.to_owned(),
                    text: text.to_owned(),
                });
            } else {
                state.kept_truncated = true;
            }
        }
        self.history.publish(|| LiveLine {
            function: self.function.clone(),
            invocation_id: self.invocation_id.clone(),
            stream: stream.into(),
            text: text.into(),
        });
    }

    /// The lines kept so far, and whether any were left out.
    pub fn take_kept(&self) -> (Vec<LogLine>, bool) {
        let mut state = self.state.lock().unwrap();
        let truncated = state.kept_truncated || state.truncated;
        (std::mem::take(&mut state.kept), truncated)
    }

    /// A sink for one of the guest's streams.
    pub fn sink(self: &Arc<Self>, stream: Stream) -> OutputSink {
        OutputSink {
            budget: self.clone(),
            stream,
            partial: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Takes `cost` bytes from the budget; false (and one warning, the first
    /// time) once it is spent.
    pub fn charge(&self, cost: u64) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.truncated {
            return false;
        }
        if cost > state.remaining {
            state.truncated = true;
            tracing::warn!(
                target: "nimbus::function",
                function = %self.function,
                invocation_id = %self.invocation_id,
                "function output truncated: the per-invocation limit (max_log_bytes) was reached"
            );
            return false;
        }
        state.remaining -= cost;
        true
    }

    fn emit(&self, stream: Stream, line: &[u8]) {
        if !self.charge(line.len() as u64 + 1) {
            return;
        }
        let text = String::from_utf8_lossy(line);
        tracing::info!(
            target: "nimbus::function",
            function = %self.function,
            invocation_id = %self.invocation_id,
            stream = %stream.as_str(),
            "{text}"
        );
        self.keep(stream.as_str(), &text);
    }
}

/// One guest output stream. Splits what it is given into lines; a trailing
/// partial line is logged when the invocation ends (the sink is dropped).
#[derive(Clone)]
pub struct OutputSink {
    budget: Arc<OutputBudget>,
    stream: Stream,
    partial: Arc<Mutex<Vec<u8>>>,
}

/// Longest line kept whole; longer ones are logged in pieces of this size.
const MAX_LINE_BYTES: usize = 16 * 1024;

impl OutputSink {
    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap();
        while let Some(newline) = bytes.iter().position(|b| *b == b'\n') {
            partial.extend_from_slice(&bytes[..newline]);
            self.budget.emit(self.stream, trim_cr(&partial));
            partial.clear();
            bytes = &bytes[newline + 1..];
        }
        partial.extend_from_slice(bytes);
        while partial.len() >= MAX_LINE_BYTES {
            let rest = partial.split_off(MAX_LINE_BYTES);
            self.budget.emit(self.stream, &partial);
            *partial = rest;
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Drop for OutputSink {
    fn drop(&mut self) {
        // Clones share the buffer; only the last one flushes it.
        if Arc::strong_count(&self.partial) == 1 {
            let partial = std::mem::take(&mut *self.partial.lock().unwrap());
            if !partial.is_empty() {
                self.budget.emit(self.stream, &partial);
            }
        }
    }
}

impl IsTerminal for OutputSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputSink {
    async fn ready(&mut self) {}
}

impl OutputStream for OutputSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for OutputSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
