//! The store conformance suites (queues, keys, secrets, history, tables,
//! schedules, buckets, leases, deployments, wake-ups, and two handles racing
//! on one file) against SQLite,
//! on a manual clock.

use nimbus_store::ManualClock;
use nimbus_store::conformance::Backend;
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::sync::Arc;

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Backend for Sqlite {
    type Store = SqliteStore;

    async fn open(&self, clock: ManualClock) -> SqliteStore {
        let options = SqliteOptions {
            path: self.dir.path().join("nimbus.db"),
            durability: Durability::Fsync,
        };
        SqliteStore::open(&options, Arc::new(clock)).unwrap()
    }
}

nimbus_store::queue_conformance_tests!(Sqlite {
    dir: tempfile::tempdir().unwrap()
});

mod keys {
    use super::*;
    nimbus_store::key_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod secrets {
    use super::*;
    nimbus_store::secret_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod history {
    use super::*;
    nimbus_store::history_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod tables {
    use super::*;
    nimbus_store::table_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod schedules {
    use super::*;
    nimbus_store::schedule_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod buckets {
    use super::*;
    nimbus_store::bucket_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod leases {
    use super::*;
    nimbus_store::lease_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod concurrency {
    use super::*;
    nimbus_store::concurrency_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod signals {
    use super::*;
    nimbus_store::signal_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}

mod deployments {
    use super::*;
    nimbus_store::deployment_conformance_tests!(Sqlite {
        dir: tempfile::tempdir().unwrap()
    });
}
