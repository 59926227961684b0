//! Group commit for the hot queue operations: plain sends, receives from
//! queues without a dead-letter queue, and deletes by receipt. Requests wait
//! in one list; one batch runs at a time, taking all that waits and doing it
//! in one transaction with one statement per kind, in one round trip, so
//! under load many requests share a commit. A batch that needs one
//! statement runs it on its own, without `BEGIN` and `COMMIT`, as an
//! unbatched request would. If a batch stalls (waiting for a row lock, say)
//! more run beside it, up to [`MAX_RUNNERS`]. Every answer is given after
//! its batch commits.

use crate::{Db, MAX_ATTEMPTS, retryable};
use nimbus_store::queue::ReceivedMessage;
use nimbus_store::{StoreError, StoreResult};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;
use tokio_postgres::Row;

/// Most batches in flight at once. Normally one runs: requests arriving
/// meanwhile wait and go together in the next, and the fewer the batches,
/// the less each request costs the database (measured in BENCHMARKS.md: one
/// runner did 1.5x the messages/s of four at 16 clients).
const MAX_RUNNERS: usize = 4;
/// How long a batch may run before requests arriving start another beside
/// it, so one batch waiting on a lock does not hold up every request.
const STALL: std::time::Duration = std::time::Duration::from_millis(10);
/// Most requests in one batch (bounds a statement's arrays).
const MAX_BATCH: usize = 512;

/// A message to insert: its id, body, encoded attributes and delay.
pub(crate) struct NewMessage {
    pub id: String,
    pub body: Vec<u8>,
    pub attributes: String,
    pub delay_ms: i64,
}

/// What a receive asks for; receives asking for the same queue, lease and
/// retention share one statement.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Receive {
    pub queue: String,
    pub lease_ms: i64,
    pub retention_ms: i64,
    pub max: u32,
}

impl Receive {
    fn group(&self) -> (&str, i64, i64) {
        (&self.queue, self.lease_ms, self.retention_ms)
    }
}

/// One request and where its answer goes.
enum Op {
    Send {
        queue: String,
        messages: Vec<NewMessage>,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    Receive {
        want: Receive,
        reply: oneshot::Sender<StoreResult<Vec<ReceivedMessage>>>,
    },
    /// Answered `true` if this receipt deleted the message.
    Delete {
        queue: String,
        seq: i64,
        receipt: String,
        reply: oneshot::Sender<StoreResult<bool>>,
    },
}

/// An op's answer, before it is sent.
enum Answer {
    Sent,
    Received(Vec<ReceivedMessage>),
    Deleted(bool),
}

pub(crate) struct Batcher {
    shared: Arc<Shared>,
}

struct Shared {
    db: Arc<Db>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Op>,
    running: usize,
    /// When a runner last started a batch.
    progress: Option<Instant>,
}

impl Batcher {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        Batcher {
            shared: Arc::new(Shared {
                db,
                state: Mutex::default(),
            }),
        }
    }

    /// Inserts `messages` into `queue` (known to exist) in order.
    pub(crate) async fn send(&self, queue: &str, messages: Vec<NewMessage>) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.submit(Op::Send {
            queue: queue.to_owned(),
            messages,
            reply,
        });
        answered(answer).await
    }

    /// Leases up to `want.max` visible messages, oldest first.
    pub(crate) async fn receive(&self, want: Receive) -> StoreResult<Vec<ReceivedMessage>> {
        let (reply, answer) = oneshot::channel();
        self.submit(Op::Receive { want, reply });
        answered(answer).await
    }

    /// Deletes message `seq` of `queue` if `receipt` is its current one;
    /// `false` if not.
    pub(crate) async fn delete(&self, queue: &str, seq: i64, receipt: &str) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.submit(Op::Delete {
            queue: queue.to_owned(),
            seq,
            receipt: receipt.to_owned(),
            reply,
        });
        answered(answer).await
    }

    /// Queues `op`, starting a runner if none runs, or if the running ones
    /// have not started a batch for [`STALL`]. The runner is a task of its
    /// own, so a caller that goes away (a closed connection) cannot abandon
    /// the others' requests mid-batch.
    fn submit(&self, op: Op) {
        let mut state = self.shared.state.lock().unwrap();
        state.waiting.push(op);
        let stalled = state.progress.is_none_or(|at| at.elapsed() >= STALL);
        if state.running == 0 || (state.running < MAX_RUNNERS && stalled) {
            state.running += 1;
            tokio::spawn(run(self.shared.clone()));
        }
    }
}

async fn answered<T>(answer: oneshot::Receiver<StoreResult<T>>) -> StoreResult<T> {
    answer.await.unwrap_or_else(|_| {
        // Only a panicking runner drops a reply unanswered.
        Err(StoreError::Backend(
            "the batch carrying this request failed".to_owned(),
        ))
    })
}

/// Runs batches until nothing waits.
async fn run(shared: Arc<Shared>) {
    loop {
        let batch = {
            let mut state = shared.state.lock().unwrap();
            if state.waiting.is_empty() {
                state.running -= 1;
                return;
            }
            let take = state.waiting.len().min(MAX_BATCH);
            state.progress = Some(Instant::now());
            state.waiting.drain(..take).collect::<Vec<_>>()
        };
        execute(&shared.db, batch).await;
    }
}

/// Runs `ops` together and answers each. If the batch fails for a reason
/// other than an outage, each op runs again on its own, so that only the
/// op at fault gets the error.
async fn execute(db: &Db, ops: Vec<Op>) {
    let started = Instant::now();
    // Planned once: a retry sends the same statements again.
    let steps = plan(&ops, db.test_now());
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match together(db, &ops, &steps).await {
            Err(Failure::Retry) if attempt < MAX_ATTEMPTS => continue,
            other => break other,
        }
    };
    match result {
        Ok((answers, signalled)) => {
            db.committed(ops.len(), started.elapsed(), Vec::new(), signalled);
            for (op, answer) in ops.into_iter().zip(answers) {
                deliver(op, Ok(answer));
            }
        }
        Err(Failure::Failed(_)) if ops.len() > 1 => {
            for op in ops {
                Box::pin(execute(db, vec![op])).await;
            }
        }
        Err(Failure::Failed(error) | Failure::Unavailable(error)) => {
            for op in ops {
                deliver(op, Err(error.clone()));
            }
        }
        Err(Failure::Retry) => {
            let error = StoreError::Backend(format!(
                "gave up after {MAX_ATTEMPTS} attempts that met serialization failures or deadlocks"
            ));
            for op in ops {
                deliver(op, Err(error.clone()));
            }
        }
    }
}

fn deliver(op: Op, answer: StoreResult<Answer>) {
    // A caller that went away no longer wants its answer: ignored.
    match op {
        Op::Send { reply, .. } => {
            let _ = reply.send(answer.map(|_| ()));
        }
        Op::Receive { reply, .. } => {
            let _ = reply.send(answer.map(|a| match a {
                Answer::Received(messages) => messages,
                _ => Vec::new(),
            }));
        }
        Op::Delete { reply, .. } => {
            let _ = reply.send(answer.map(|a| matches!(a, Answer::Deleted(true))));
        }
    }
}

enum Failure {
    /// A serialization failure or deadlock: the whole batch again.
    Retry,
    /// The database is down or the connection was lost.
    Unavailable(StoreError),
    Failed(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if retryable(&e) {
            return Failure::Retry;
        }
        match crate::classify(&e, None) {
            unavailable @ StoreError::Unavailable(_) => Failure::Unavailable(unavailable),
            other => Failure::Failed(other),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Closed => Failure::Unavailable(e),
            other => Failure::Failed(other),
        }
    }
}

/// Deletes first (they are the only statement that may wait for a row
/// lock), then inserts, then leases, which see this batch's inserts.
const DELETE: &str = "DELETE FROM messages m
     USING unnest($1::int8[], $2::text[], $3::text[]) AS d(seq, queue, receipt)
     WHERE m.seq = d.seq AND m.queue = d.queue AND m.receipt = d.receipt
     RETURNING m.seq, m.receipt";

/// Rows are inserted in array order, so a batch's messages take seqs
/// (delivery order) in the order they were sent.
const SEND: &str = "INSERT INTO messages (message_id, queue, body, attributes, sent_at, visible_at)
     SELECT u.id, u.queue, u.body, u.attributes, n.ms, nimbus_later(n.ms, u.delay)
     FROM (SELECT nimbus_now_ms($6) AS ms) n,
          unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::int8[])
            WITH ORDINALITY AS u(id, queue, body, attributes, delay, ord)
     ORDER BY u.ord";

/// Leases for every receive of one group: `$3` is their total `max`.
static RECEIVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH n AS (SELECT nimbus_now_ms($5) AS ms),
         picked AS (
            SELECT m.seq FROM messages m, n
            WHERE m.queue = $1 AND m.visible_at <= n.ms AND m.sent_at > n.ms - $2
            ORDER BY m.seq LIMIT $3 FOR UPDATE OF m SKIP LOCKED)
         UPDATE messages m SET receipt = {},
                receive_count = m.receive_count + 1, visible_at = nimbus_later(n.ms, $4),
                first_received_at = COALESCE(m.first_received_at, n.ms)
         FROM picked, n WHERE m.seq = picked.seq
         RETURNING {}",
        crate::queue::NEW_RECEIPT,
        crate::queue::LEASED
    )
});

/// One statement of a batch: its SQL and parameters.
struct Step {
    sql: &'static str,
    params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
    kind: StepKind,
}

enum StepKind {
    Delete,
    Send,
    /// The receives (by index in the batch) sharing this statement.
    Receive(Vec<usize>),
}

/// The statements that do `ops`, in the order they must run.
fn plan(ops: &[Op], test_now: Option<i64>) -> Vec<Step> {
    let mut steps = Vec::new();
    let (mut seqs, mut queues, mut receipts) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for op in ops {
        if let Op::Delete {
            queue,
            seq,
            receipt,
            ..
        } = op
            && seen.insert((*seq, receipt.as_str()))
        {
            seqs.push(*seq);
            queues.push(queue.clone());
            receipts.push(receipt.clone());
        }
    }
    if !seqs.is_empty() {
        steps.push(Step {
            sql: DELETE,
            params: vec![Box::new(seqs), Box::new(queues), Box::new(receipts)],
            kind: StepKind::Delete,
        });
    }
    let (mut ids, mut queues, mut bodies, mut attributes, mut delays) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for op in ops {
        if let Op::Send {
            queue, messages, ..
        } = op
        {
            for m in messages {
                ids.push(m.id.clone());
                queues.push(queue.clone());
                bodies.push(m.body.clone());
                attributes.push(m.attributes.clone());
                delays.push(m.delay_ms);
            }
        }
    }
    if !ids.is_empty() {
        steps.push(Step {
            sql: SEND,
            params: vec![
                Box::new(ids),
                Box::new(queues),
                Box::new(bodies),
                Box::new(attributes),
                Box::new(delays),
                Box::new(test_now),
            ],
            kind: StepKind::Send,
        });
    }
    let mut groups: BTreeMap<(&str, i64, i64), Vec<usize>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        if let Op::Receive { want, .. } = op {
            groups.entry(want.group()).or_default().push(index);
        }
    }
    for ((queue, lease_ms, retention_ms), members) in groups {
        let total: i64 = members
            .iter()
            .map(|&i| match &ops[i] {
                Op::Receive { want, .. } => i64::from(want.max),
                _ => 0,
            })
            .sum();
        steps.push(Step {
            sql: RECEIVE.as_str(),
            params: vec![
                Box::new(queue.to_owned()),
                Box::new(retention_ms),
                Box::new(total),
                Box::new(lease_ms),
                Box::new(test_now),
            ],
            kind: StepKind::Receive(members),
        });
    }
    steps
}

/// Runs the batch: one statement alone, or several in one transaction.
/// Returns each op's answer and the queues to wake.
async fn together(
    db: &Db,
    ops: &[Op],
    steps: &[Step],
) -> Result<(Vec<Answer>, Vec<String>), Failure> {
    let client = db.client().await?;
    let mut results = Vec::with_capacity(steps.len());
    if let [step] = steps {
        let statement = client.prepare_cached(step.sql).await?;
        results.push(client.query(&statement, &params(step)).await?);
    } else {
        // One round trip: `BEGIN`, the statements and `COMMIT` go out
        // together (tokio-postgres pipelines requests made at once on one
        // connection, in the order they are first polled) and PostgreSQL
        // runs them in order. If one fails, the rest fail after it, `COMMIT`
        // rolls back, and the first error is the batch's.
        let mut statements = Vec::with_capacity(steps.len());
        for step in steps {
            statements.push(client.prepare_cached(step.sql).await?);
        }
        let params: Vec<_> = steps.iter().map(params).collect();
        let begin = client.batch_execute("BEGIN");
        let queries = futures_util::future::try_join_all(
            statements
                .iter()
                .zip(&params)
                .map(|(statement, params)| client.query(statement, params)),
        );
        let commit = client.batch_execute("COMMIT");
        let ((), rows, ()) = tokio::try_join!(begin, queries, commit)?;
        results = rows;
    }
    Ok(answers(ops, steps, results))
}

fn params(step: &Step) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    step.params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect::<Vec<_>>()
}

/// Each op's answer from the statements' rows, and the queues sent to.
fn answers(ops: &[Op], steps: &[Step], results: Vec<Vec<Row>>) -> (Vec<Answer>, Vec<String>) {
    let mut answers: Vec<Option<Answer>> = ops.iter().map(|_| None).collect();
    let mut signalled = Vec::new();
    for (step, rows) in steps.iter().zip(results) {
        match &step.kind {
            StepKind::Delete => {
                // A receipt deletes once: the first op holding it is told so,
                // as if the ops had run one after another.
                let mut deleted: HashSet<(i64, String)> =
                    rows.iter().map(|row| (row.get(0), row.get(1))).collect();
                for (index, op) in ops.iter().enumerate() {
                    if let Op::Delete { seq, receipt, .. } = op {
                        let hit = deleted.remove(&(*seq, receipt.clone()));
                        answers[index] = Some(Answer::Deleted(hit));
                    }
                }
            }
            StepKind::Send => {
                for (index, op) in ops.iter().enumerate() {
                    if let Op::Send { queue, .. } = op {
                        answers[index] = Some(Answer::Sent);
                        signalled.push(queue.clone());
                    }
                }
            }
            StepKind::Receive(members) => {
                // Oldest first, handed out in the order the receives came.
                let mut leased = crate::queue::leased(&rows).into_iter();
                for &index in members {
                    let max = match &ops[index] {
                        Op::Receive { want, .. } => want.max as usize,
                        _ => 0,
                    };
                    answers[index] = Some(Answer::Received(leased.by_ref().take(max).collect()));
                }
            }
        }
    }
    let answers = answers
        .into_iter()
        .map(|a| a.unwrap_or(Answer::Sent))
        .collect();
    (answers, signalled)
}
