//! Distributed tracing: W3C trace context (`traceparent`) carried across
//! every hop, spans for gateway requests, invocations and host calls, and
//! their export over OTLP/HTTP (JSON encoding) when an endpoint is
//! configured. Without an endpoint, spans cost an id and nothing is sent.
//! A [`SpanRecorder`] also keeps the spans of one invocation for its
//! history record, exporter or not.

mod export;

pub use export::{Exporter, spawn_exporter};

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Finished spans waiting for the exporter; past this, spans are dropped
/// (and counted in the log) rather than slowing invocations down.
pub const MAX_PENDING_SPANS: usize = 8_192;

/// Where a span sits in a trace: the trace and the span's own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a W3C `traceparent` (version 00); `None` if malformed or all
    /// zero, in which case a new trace starts.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else {
            return None;
        };
        if *version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = hex(span)?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }
}

/// What kind of work a span stands for (OTLP's `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    /// OTLP's name for the kind, in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// A span in progress; [`Span::end`] sends it to the exporter.
#[derive(Debug)]
pub struct Span {
    pub context: TraceContext,
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    start_ns: u64,
    attributes: Vec<(&'static str, String)>,
    error: Option<String>,
    sink: Option<mpsc::Sender<FinishedSpan>>,
    recorder: Option<SpanRecorder>,
}

impl Span {
    /// Names the span once what it is about is known (a route, say).
    pub fn rename(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.attributes.push((key, value.into()));
    }

    /// Marks the span failed, with a short description.
    pub fn fail(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
    }

    pub fn end(mut self) {
        self.finish();
    }

    /// Sends the span on, once: later calls (and the drop after `end`) do
    /// nothing.
    fn finish(&mut self) {
        let (sink, recorder) = (self.sink.take(), self.recorder.take());
        if sink.is_none() && recorder.is_none() {
            return;
        }
        let finished = FinishedSpan {
            context: self.context,
            parent: self.parent,
            name: std::mem::take(&mut self.name),
            kind: self.kind,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attributes: std::mem::take(&mut self.attributes),
            error: self.error.take(),
        };
        match (sink, recorder) {
            (Some(sink), recorder) => {
                if let Some(recorder) = recorder {
                    recorder.keep(finished.clone());
                }
                if sink.try_send(finished).is_err() {
                    tracing::debug!("span dropped: the exporter is behind");
                }
            }
            (None, Some(recorder)) => recorder.keep(finished),
            (None, None) => {}
        }
    }
}

/// A span dropped without [`Span::end`] (its work was cut off: an invocation
/// stopped at its deadline with an outbound request in flight, a client
/// that went away) still ends, as failed, so the trace shows where the time
/// went.
impl Drop for Span {
    fn drop(&mut self) {
        if self.sink.is_some() || self.recorder.is_some() {
            self.error
                .get_or_insert_with(|| "cancelled before it ended".to_owned());
            self.finish();
        }
    }
}

/// A span as exported.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    pub context: TraceContext,
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, String)>,
    pub error: Option<String>,
}

/// The most spans one recorder keeps; past it, spans are counted, not kept
/// (a guest making thousands of host calls must not grow its record
/// without bound).
pub const MAX_RECORDED_SPANS: usize = 128;

/// Keeps the spans of one unit of work as they end (sampled or not: the
/// record is local, whatever the caller asked of its own tracing), up to
/// [`MAX_RECORDED_SPANS`]. Cheap to clone; clones share the spans.
#[derive(Clone, Debug, Default)]
pub struct SpanRecorder(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    spans: Vec<FinishedSpan>,
    dropped: u32,
}

impl SpanRecorder {
    fn keep(&self, span: FinishedSpan) {
        let mut recorded = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if recorded.spans.len() < MAX_RECORDED_SPANS {
            recorded.spans.push(span);
        } else {
            recorded.dropped = recorded.dropped.saturating_add(1);
        }
    }

    /// The spans kept so far, in the order they ended, and how many were
    /// left out; the recorder starts over empty.
    pub fn take(&self) -> (Vec<FinishedSpan>, u32) {
        let mut recorded = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let taken = std::mem::take(&mut *recorded);
        (taken.spans, taken.dropped)
    }
}

/// Starts spans; cheap to clone. Without an exporter, spans still get ids
/// (so context propagates) but are never sent.
#[derive(Clone, Debug, Default)]
pub struct Tracer {
    sink: Option<mpsc::Sender<FinishedSpan>>,
    recorder: Option<SpanRecorder>,
}

impl Tracer {
    /// A tracer whose spans go nowhere.
    pub fn disabled() -> Self {
        Tracer::default()
    }

    /// This tracer, also keeping every span it starts in `recorder`.
    pub fn recording(&self, recorder: &SpanRecorder) -> Tracer {
        Tracer {
            sink: self.sink.clone(),
            recorder: Some(recorder.clone()),
        }
    }

    /// Starts a span under `parent`, or a new trace without one.
    pub fn start(
        &self,
        name: impl Into<String>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> Span {
        let (trace_id, parent_id, sampled) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
            None => (new_trace_id(), None, true),
        };
        Span {
            context: TraceContext {
                trace_id,
                span_id: random_id::<8>(),
                sampled,
            },
            parent: parent_id,
            name: name.into(),
            kind,
            start_ns: now_ns(),
            attributes: Vec::new(),
            error: None,
            sink: self.sink.clone().filter(|_| sampled),
            recorder: self.recorder.clone(),
        }
    }
}

/// A random, non-zero id (W3C trace context forbids all zeroes), from a
/// per-thread SplitMix64 sequence whose start comes from the OS (through
/// std's randomly keyed hasher) once per thread. Ids must be unique, not
/// secret; a getrandom call per id cost a syscall for every span of every
/// request.
fn random_id<const N: usize>() -> [u8; N] {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish());
    }
    let mut id = [0u8; N];
    while id == [0; N] {
        for chunk in id.chunks_mut(8) {
            let word = STATE.with(|state| {
                let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                state.set(next);
                let mut z = next;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            });
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
    }
    id
}

/// A new trace's id: the milliseconds since the epoch in its first 6 bytes,
/// then 10 random ones (as AWS X-Ray's ids lead with the time). Invocation
/// records are found by trace id through an index; ids that grow with time
/// are added at its end, where wholly random ones dirtied a page of it at
/// random for every record stored. The random part keeps them unique.
fn new_trace_id() -> [u8; 16] {
    let mut id = random_id::<16>();
    let ms = now_ns() / 1_000_000;
    id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    id
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2)
        || !text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Ids as W3C writes them: two lower-case hex digits per byte.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_ones_are_refused() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(text).unwrap();
        assert!(ctx.sampled);
        assert_eq!(ctx.to_traceparent(), text);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_recording_tracer_keeps_its_spans_up_to_the_bound_sampled_or_not() {
        let recorder = SpanRecorder::default();
        let tracer = Tracer::disabled().recording(&recorder);
        let unsampled =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let mut root = tracer.start("root", SpanKind::Internal, Some(&unsampled));
        root.set("k", "v");
        let mut child = tracer.start("child", SpanKind::Client, Some(&root.context));
        child.fail("refused");
        child.end();
        root.end();
        Tracer::disabled()
            .start("elsewhere", SpanKind::Internal, None)
            .end();
        let (spans, dropped) = recorder.take();
        assert_eq!(dropped, 0);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["child", "root"]);
        assert_eq!(spans[0].parent, Some(spans[1].context.span_id));
        assert_eq!(spans[0].error.as_deref(), Some("refused"));
        assert_eq!(spans[1].attributes, [("k", "v".to_owned())]);
        assert!(spans[1].end_ns >= spans[1].start_ns);

        for i in 0..MAX_RECORDED_SPANS + 5 {
            tracer
                .start(format!("call {i}"), SpanKind::Internal, None)
                .end();
        }
        let (spans, dropped) = recorder.take();
        assert_eq!((spans.len(), dropped), (MAX_RECORDED_SPANS, 5));
        assert_eq!(recorder.take().0.len(), 0);

        // A span dropped unended is kept too, as cancelled.
        let cut = tracer.start("cut off", SpanKind::Client, None);
        drop(cut);
        let (spans, _) = recorder.take();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].error.as_deref(), Some("cancelled before it ended"));
    }

    #[test]
    fn new_traces_start_with_the_time_so_later_ones_sort_after() {
        let tracer = Tracer::disabled();
        let ms = || (now_ns() / 1_000_000).to_be_bytes()[2..].to_vec();
        let before = ms();
        let first = tracer.start("a", SpanKind::Server, None).context.trace_id;
        let second = tracer.start("b", SpanKind::Server, None).context.trace_id;
        let after = ms();
        assert!(before.as_slice() <= &first[..6] && &first[..6] <= after.as_slice());
        assert!(
            first[..6] <= second[..6],
            "the time never goes back between two"
        );
        assert_ne!(first, second);
    }

    #[test]
    fn a_child_span_shares_the_trace_and_points_at_its_parent() {
        let tracer = Tracer::disabled();
        let root = tracer.start("root", SpanKind::Server, None);
        let child = tracer.start("child", SpanKind::Internal, Some(&root.context));
        assert_eq!(child.context.trace_id, root.context.trace_id);
        assert_eq!(child.parent, Some(root.context.span_id));
        assert_ne!(child.context.span_id, root.context.span_id);
    }
}
