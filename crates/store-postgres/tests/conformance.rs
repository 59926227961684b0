//! The store conformance suites against PostgreSQL: a private server for
//! this test process, a fresh schema per test, on a manual clock.

use nimbus_store::ManualClock;
use nimbus_store::conformance::Backend;
use nimbus_store_postgres::{DEFAULT_POOL_SIZE, PgOptions, PgStore};
use std::sync::Arc;

struct Postgres {
    url: String,
}

impl Postgres {
    fn fresh() -> Self {
        Postgres {
            url: nimbus_test_postgres::server().fresh_url(),
        }
    }
}

impl Backend for Postgres {
    type Store = PgStore;

    async fn open(&self, clock: ManualClock) -> PgStore {
        let options = PgOptions {
            url: self.url.clone(),
            relaxed_durability: false,
            pool_size: DEFAULT_POOL_SIZE,
        };
        PgStore::connect(&options, Some(Arc::new(clock)))
            .await
            .unwrap()
    }
}

nimbus_store::queue_conformance_tests!(Postgres::fresh());

mod keys {
    use super::*;
    nimbus_store::key_conformance_tests!(Postgres::fresh());
}

mod secrets {
    use super::*;
    nimbus_store::secret_conformance_tests!(Postgres::fresh());
}

mod history {
    use super::*;
    nimbus_store::history_conformance_tests!(Postgres::fresh());
}

mod tables {
    use super::*;
    nimbus_store::table_conformance_tests!(Postgres::fresh());
}

mod schedules {
    use super::*;
    nimbus_store::schedule_conformance_tests!(Postgres::fresh());
}

mod buckets {
    use super::*;
    nimbus_store::bucket_conformance_tests!(Postgres::fresh());
}

mod concurrency {
    use super::*;
    nimbus_store::concurrency_conformance_tests!(Postgres::fresh());
}

mod signals {
    use super::*;
    nimbus_store::signal_conformance_tests!(Postgres::fresh());
}
