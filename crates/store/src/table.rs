//! Tables of JSON documents with change streams. Items are addressed by a
//! partition key and an optional sort key (strings, compared bytewise);
//! every item carries a version that each write increases. A table with a
//! stream records every committed write as a change record in the same
//! transaction, under a sequence number that increases per table, kept for
//! the table's stream retention. Stream consumers keep checkpoints here too.

use crate::{StoreResult, Timestamp};

/// What a change record carries besides its keys (DynamoDB's view types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamView {
    KeysOnly,
    NewImage,
    OldImage,
    NewAndOldImages,
}

impl StreamView {
    pub fn keeps_new(self) -> bool {
        matches!(self, StreamView::NewImage | StreamView::NewAndOldImages)
    }

    pub fn keeps_old(self) -> bool {
        matches!(self, StreamView::OldImage | StreamView::NewAndOldImages)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamView::KeysOnly => "keys_only",
            StreamView::NewImage => "new_image",
            StreamView::OldImage => "old_image",
            StreamView::NewAndOldImages => "new_and_old_images",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            StreamView::KeysOnly,
            StreamView::NewImage,
            StreamView::OldImage,
            StreamView::NewAndOldImages,
        ]
        .into_iter()
        .find(|v| v.as_str() == text)
    }
}

/// A table as declared in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    pub name: String,
    /// The document attribute holding the partition key.
    pub partition_key: String,
    /// The document attribute holding the sort key, if the table has one.
    pub sort_key: Option<String>,
    /// `None`: writes leave no change records.
    pub stream: Option<StreamView>,
    /// Change records older than this are removed by `expire_streams`.
    pub stream_retention_ms: u64,
    pub max_item_bytes: usize,
}

impl TableConfig {
    /// The sort column every backend stores for `key` (`""` in tables
    /// without a sort key), or why the key does not fit this table.
    pub fn stored_sort_key(&self, key: &ItemKey) -> StoreResult<String> {
        use crate::StoreError::InvalidItem;
        if key.partition.is_empty() {
            return Err(InvalidItem(format!(
                "the partition key `{}` is empty",
                self.partition_key
            )));
        }
        match (&self.sort_key, &key.sort) {
            (Some(_), Some(sort)) if !sort.is_empty() => Ok(sort.clone()),
            (Some(name), _) => Err(InvalidItem(format!(
                "table `{}` needs a non-empty sort key `{name}`",
                self.name
            ))),
            (None, None) => Ok(String::new()),
            (None, Some(_)) => Err(InvalidItem(format!(
                "table `{}` has no sort key",
                self.name
            ))),
        }
    }
}

/// An item's address: the partition key and, in tables with a sort key,
/// the sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    pub partition: String,
    pub sort: Option<String>,
}

/// When a put may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PutCondition {
    #[default]
    Always,
    /// Only if no item has this key.
    IfAbsent,
    /// Only if the item exists with exactly this version.
    IfVersion(u64),
}

impl PutCondition {
    /// Whether a put may happen to an item now at `current_version` (`None`:
    /// absent); every backend decides by this, under its lock on the item.
    pub fn allows(self, current_version: Option<u64>) -> bool {
        match self {
            PutCondition::Always => true,
            PutCondition::IfAbsent => current_version.is_none(),
            PutCondition::IfVersion(v) => current_version == Some(v),
        }
    }
}

/// A write that the store did not make because its condition was false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionFailed {
    /// The item's version now, or `None` if it does not exist.
    pub current_version: Option<u64>,
}

/// An item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub key: ItemKey,
    /// The JSON document, as written.
    pub document: Vec<u8>,
    /// 1 for the first write of the key, then one more per write (a delete
    /// and re-create starts again at 1).
    pub version: u64,
    pub updated_at: Timestamp,
}

/// Which sort keys a query wants, within one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortRange {
    #[default]
    All,
    /// Sort keys starting with this text.
    Prefix(String),
    /// Sort keys from `from` to `to`, both included; either end may be open.
    Between {
        from: Option<String>,
        to: Option<String>,
    },
}

/// One page of items and where the next one starts (`None`: no more).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemPage {
    pub items: Vec<StoredItem>,
    /// The last key of this page: pass it as `after` for the next page.
    pub next: Option<ItemKey>,
}

/// What a write did to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Modify => "modify",
            ChangeKind::Remove => "remove",
        }
    }
}

/// One committed write, as its table's stream records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Increases with every write to the table (gaps allowed).
    pub seq: u64,
    pub kind: ChangeKind,
    pub key: ItemKey,
    /// The document after the write, if the stream view keeps it.
    pub new_image: Option<Vec<u8>>,
    /// The document before the write, if the stream view keeps it.
    pub old_image: Option<Vec<u8>>,
    /// The item's version after the write (before it, for a remove).
    pub version: u64,
    pub at: Timestamp,
    /// The writer's W3C trace context, carried to stream consumers.
    pub traceparent: Option<String>,
}

/// Reads of a stream split by partition key: lane `index` of `lanes` sees
/// only keys whose [`key_lane`] is `index`, so lanes can run in parallel
/// without reordering any one key's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    pub index: u32,
    pub lanes: u32,
}

/// A stable hash of a partition key (FNV-1a, 32 bits): the same key lands
/// in the same lane in every process and version.
pub fn key_hash(partition: &str) -> u32 {
    partition.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The lane of `lanes` that owns `partition`.
pub fn key_lane(partition: &str, lanes: u32) -> u32 {
    key_hash(partition) % lanes.max(1)
}

/// The [`crate::QueueSignals`] name the store signals after a committed
/// write to `table` and its stream consumers wait on.
pub fn stream_signal(table: &str) -> String {
    format!("_stream.{table}")
}

/// How the names of `table`'s stream consumers begin: a consumer keeps its
/// checkpoint under this prefix followed by its own part (a stream
/// trigger's function and lane), so deleting the table finds them.
pub fn stream_consumer_prefix(table: &str) -> String {
    format!("stream:{table}:")
}

/// What deleting a table removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableDeleted {
    pub items: u64,
    pub change_records: u64,
    /// Checkpoints of its stream's consumers.
    pub checkpoints: u64,
}

#[async_trait::async_trait]
pub trait TableStore: Send + Sync {
    /// Creates or updates tables; tables not listed are left alone.
    async fn declare_tables(&self, tables: &[TableConfig]) -> StoreResult<()>;

    async fn tables(&self) -> StoreResult<Vec<TableConfig>>;

    /// Writes `document` under `key` if `condition` holds, recording the
    /// change on the table's stream in the same transaction; returns the new
    /// version once it is durable. `traceparent` travels with the change.
    async fn put_item(
        &self,
        table: &str,
        key: ItemKey,
        document: Vec<u8>,
        condition: PutCondition,
        traceparent: Option<String>,
    ) -> StoreResult<Result<u64, ConditionFailed>>;

    async fn get_item(&self, table: &str, key: &ItemKey) -> StoreResult<Option<StoredItem>>;

    /// Deletes the item (only if it has `if_version`, when given), recording
    /// the change; returns the deleted item's version, `Ok(None)` if there
    /// was no item (and no change is recorded).
    async fn delete_item(
        &self,
        table: &str,
        key: &ItemKey,
        if_version: Option<u64>,
        traceparent: Option<String>,
    ) -> StoreResult<Result<Option<u64>, ConditionFailed>>;

    /// Items of one partition in sort-key order, after `after` (exclusive).
    async fn query(
        &self,
        table: &str,
        partition: &str,
        range: &SortRange,
        after: Option<&ItemKey>,
        limit: u32,
    ) -> StoreResult<ItemPage>;

    /// Every item in key order, after `after` (exclusive).
    async fn scan(&self, table: &str, after: Option<&ItemKey>, limit: u32)
    -> StoreResult<ItemPage>;

    /// Change records with `seq > after`, oldest first, optionally only one
    /// lane's keys.
    async fn read_stream(
        &self,
        table: &str,
        after: u64,
        limit: u32,
        lane: Option<Lane>,
    ) -> StoreResult<Vec<ChangeRecord>>;

    /// The last sequence number recorded on the table's stream (0 if none).
    async fn latest_seq(&self, table: &str) -> StoreResult<u64>;

    /// The position just before the first change record at or after `at`:
    /// reading after it starts at that record.
    async fn seq_before_time(&self, table: &str, at: Timestamp) -> StoreResult<u64>;

    /// A stream consumer's checkpoint: every record up to it is done.
    async fn checkpoint(&self, consumer: &str) -> StoreResult<Option<u64>>;

    /// Checkpoints of every consumer whose name starts with `prefix`.
    async fn checkpoints(&self, prefix: &str) -> StoreResult<Vec<(String, u64)>>;

    /// Moves a consumer's checkpoint (never backwards). With a `fence`, only
    /// if that lease has not changed hands since, else
    /// [`crate::StoreError::Fenced`] and nothing moves.
    async fn set_checkpoint(
        &self,
        consumer: &str,
        seq: u64,
        fence: Option<&crate::Fence>,
    ) -> StoreResult<()>;

    /// Removes change records past their table's stream retention; returns
    /// how many.
    async fn expire_streams(&self) -> StoreResult<u64>;

    /// Deletes a table in one transaction: its items, its change records,
    /// the checkpoints of its stream's consumers (named under
    /// [`stream_consumer_prefix`]) and its settings. An unknown table is
    /// [`crate::StoreError::TableNotFound`]. Declared again later, it
    /// starts empty, its stream from the beginning.
    async fn delete_table(&self, table: &str) -> StoreResult<TableDeleted>;
}
