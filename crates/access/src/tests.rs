use super::*;
use nimbus_store::SystemClock;
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use nimbus_vault::SecretKey;

async fn keys(dir: &tempfile::TempDir) -> (AccessKeys, Arc<SqliteStore>) {
    let options = SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    let vault = Vault::open(store.clone(), &SecretKey::generate().unwrap())
        .await
        .unwrap();
    (AccessKeys::new(Arc::new(vault)), store)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn grants_parse_and_print_back() {
    for text in [
        "queue:orders:send",
        "queue:orders:receive",
        "queue:orders:purge",
        "bucket:photos:read",
        "bucket:photos/uploads/:write",
    ] {
        assert_eq!(AccessGrant::parse(text).unwrap().to_string(), text);
    }
    for (bad, says) in [
        ("queue:orders:delete", "`send`, `receive` and `purge`"),
        ("queue:Orders:send", "invalid queue"),
        ("bucket:photos:admin", "`read` and `write`"),
        ("bucket:Photos:read", "invalid bucket"),
        ("bucket:photos/../x:read", "invalid key prefix"),
        ("table:t:read", "is not a grant"),
        ("queue:orders", "is not a grant"),
    ] {
        let error = AccessGrant::parse(bad).unwrap_err();
        assert!(error.contains(says), "{bad}: {error}");
    }
}

#[test]
fn each_action_needs_its_own_grant() {
    let key = AccessKey {
        id: "NIMBAAAAAAAAAAAAAAAA".into(),
        name: "k".into(),
        secret: "s".into(),
        grants: [
            "queue:orders:send",
            "bucket:photos/uploads/:write",
            "bucket:docs/a/:read",
        ]
        .iter()
        .map(|g| AccessGrant::parse(g).unwrap())
        .collect(),
    };
    assert!(key.allows(Action::QueueSend("orders")));
    assert!(key.allows(Action::QueueSee("orders")));
    assert!(!key.allows(Action::QueueReceive("orders")));
    assert!(!key.allows(Action::QueuePurge("orders")));
    assert!(!key.allows(Action::QueueSend("other")));
    assert!(key.allows(Action::BucketWrite {
        bucket: "photos",
        key: "uploads/x.png"
    }));
    assert!(!key.allows(Action::BucketWrite {
        bucket: "photos",
        key: "x.png"
    }));
    assert!(!key.allows(Action::BucketRead {
        bucket: "photos",
        key: "uploads/x.png"
    }));
    assert!(key.allows(Action::BucketSee("photos")));
    assert!(key.allows(Action::BucketRead {
        bucket: "docs",
        key: "a/b"
    }));
    assert!(key.allows(Action::BucketList {
        bucket: "docs",
        prefix: "a/b"
    }));
    assert!(!key.allows(Action::BucketList {
        bucket: "docs",
        prefix: ""
    }));
    assert!(!key.allows(Action::BucketSee("other")));
}

#[tokio::test]
async fn a_key_is_sealed_looked_up_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, store) = keys(&dir).await;
    let key = keys
        .create(
            "ci",
            &strings(&["queue:orders:send", "queue:orders:send", "bucket:b:read"]),
        )
        .await
        .unwrap();
    assert!(valid_id(&key.id), "{}", key.id);
    assert_eq!(key.secret.len(), 40);
    assert_eq!(key.grants.len(), 2, "duplicates are dropped");
    // Sealed: the secret is nowhere in the stored bytes.
    let sealed = nimbus_store::SecretStore::get_secret(store.as_ref(), &vault_name(&key.id))
        .await
        .unwrap()
        .unwrap()
        .sealed;
    assert!(!sealed.windows(40).any(|w| w == key.secret.as_bytes()));
    let found = keys.lookup(&key.id).await.unwrap().unwrap();
    assert_eq!(*found, key);
    let listed = keys.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, key.id);
    assert_eq!(listed[0].grants, ["queue:orders:send", "bucket:b:read"]);
    keys.revoke(&key.id).await.unwrap();
    assert!(
        keys.lookup(&key.id).await.unwrap().is_none(),
        "revoked at once on this node"
    );
    assert!(matches!(
        keys.revoke(&key.id).await,
        Err(AccessError::NotFound(_))
    ));
    assert!(keys.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_keys_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _store) = keys(&dir).await;
    for (name, grants, says) in [
        ("ci", vec![], "at least one grant"),
        ("has space", strings(&["queue:q:send"]), "name"),
        ("ci", strings(&["queue:q:eat"]), "no `eat` permission"),
    ] {
        let error = keys.create(name, &grants).await.unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
    }
    assert!(keys.list().await.unwrap().is_empty());
    // Ids that cannot be keys never reach the vault.
    for id in [
        "",
        "AKIAIOSFODNN7EXAMPLE",
        "NIMB../../../etc/passwd",
        "nimbaaaaaaaaaaaaaaaa",
    ] {
        assert!(keys.lookup(id).await.unwrap().is_none());
    }
}
