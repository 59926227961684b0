//! Deployment cases: components are kept by digest (bytes that do not hash
//! to it are refused and nothing is stored, and a component of tens of
//! megabytes round-trips), a deployment needs every component it names,
//! the same digest gives back the same deployment, ids count from 1 in
//! creation order and are never reused, activation is recorded by the
//! store's clock and wakes the deployment signal's waiters, and pruning
//! keeps the newest deployments, the active one, and every component one of
//! them names (and, for a grace, components just put or asked about).

use crate::deployment::{
    COMPONENT_GRACE_MS, DEPLOYMENT_SIGNAL, Deployment, DeploymentStore, DeploymentSummary,
    NewDeployment, component_digest,
};
use crate::{ManualClock, Store, StoreError};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

const START_MS: u64 = 1_700_000_000_000;
/// A bound on waiting, not a delay: the wait ends at the wake-up.
const PATIENCE: Duration = Duration::from_secs(10);
/// About the size of a Python component.
const LARGE_COMPONENT_BYTES: usize = 20 << 20;

/// Puts `bytes` as a component and returns its digest.
async fn put<S: DeploymentStore>(store: &S, bytes: &[u8]) -> String {
    let digest = component_digest(bytes);
    store.put_component(&digest, bytes.to_vec()).await.unwrap();
    digest
}

fn new(digest: &str, components: &[(&str, &str)]) -> NewDeployment {
    NewDeployment {
        manifest: format!("# version {digest}\n[app]\nname = \"shop\"\n"),
        components: components
            .iter()
            .map(|(f, d)| ((*f).to_owned(), (*d).to_owned()))
            .collect(),
        digest: digest.to_owned(),
    }
}

async fn create<S: DeploymentStore>(
    store: &S,
    digest: &str,
    components: &[(&str, &str)],
) -> Deployment {
    store
        .create_deployment(new(digest, components))
        .await
        .unwrap()
}

/// Whether the store keeps `digest`, read back whole.
async fn kept<S: DeploymentStore>(store: &S, digest: &str) -> bool {
    store.component(digest).await.unwrap().is_some()
}

pub async fn components_are_kept_by_digest_and_only_missing_ones_are_reported<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let a = put(&store, b"component a").await;
    let b = put(&store, b"").await;
    let c = component_digest(b"component c");
    assert_eq!(
        store.component(&a).await.unwrap().as_deref(),
        Some(&b"component a"[..])
    );
    assert_eq!(store.component(&b).await.unwrap(), Some(Vec::new()));
    assert_eq!(store.component(&c).await.unwrap(), None);
    let asked = [
        c.clone(),
        a.clone(),
        "not-a-digest".to_owned(),
        c.clone(),
        b,
    ];
    assert_eq!(
        store.missing_components(&asked).await.unwrap(),
        [c, "not-a-digest".to_owned()],
        "the missing ones, in the order asked, each once"
    );
    assert!(store.missing_components(&[]).await.unwrap().is_empty());
    // A second put of the same bytes changes nothing.
    assert_eq!(put(&store, b"component a").await, a);
    assert_eq!(
        store.component(&a).await.unwrap().as_deref(),
        Some(&b"component a"[..])
    );
}

pub async fn a_component_whose_bytes_do_not_match_its_digest_is_refused_and_not_stored<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let claimed = component_digest(b"what the client built");
    let refused = store
        .put_component(&claimed, b"what arrived".to_vec())
        .await;
    assert!(
        matches!(&refused, Err(StoreError::InvalidComponent(why)) if why.contains(&claimed)),
        "{refused:?}"
    );
    assert_eq!(store.component(&claimed).await.unwrap(), None);
    assert_eq!(
        store
            .missing_components(std::slice::from_ref(&claimed))
            .await
            .unwrap(),
        [claimed]
    );
    // Nor is a digest in another form (SHA-256, but upper case).
    let upper = component_digest(b"x").to_uppercase();
    assert!(matches!(
        store.put_component(&upper, b"x".to_vec()).await,
        Err(StoreError::InvalidComponent(_))
    ));
    assert_eq!(store.component(&upper).await.unwrap(), None);
}

pub async fn a_component_of_many_megabytes_round_trips<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    // Bytes that do not compress, so the backend really stores them all.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..LARGE_COMPONENT_BYTES / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let digest = put(&store, &bytes).await;
    let deployment = create(&store, "large", &[("python", &digest)]).await;
    assert_eq!(deployment.components["python"], digest);
    let read = store.component(&digest).await.unwrap().unwrap();
    assert!(read == bytes, "the component came back changed");
}

pub async fn a_deployment_naming_a_missing_component_is_refused_naming_it<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let present = put(&store, b"api").await;
    let absent = component_digest(b"worker");
    assert_eq!(
        store
            .create_deployment(new("v1", &[("api", &present), ("worker", &absent)]))
            .await,
        Err(StoreError::ComponentMissing {
            function: "worker".to_owned(),
            digest: absent.clone(),
        })
    );
    assert!(store.deployments(10).await.unwrap().is_empty());
    // Once it is uploaded, the same deployment is made, as the first.
    put(&store, b"worker").await;
    let made = create(&store, "v1", &[("api", &present), ("worker", &absent)]).await;
    assert_eq!(made.id, 1, "the refusal used no id");
}

pub async fn deployments_are_numbered_from_one_in_creation_order_by_the_store_clock<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let api = put(&store, b"api").await;
    let worker = put(&store, b"worker").await;
    let mut made = Vec::new();
    for (i, digest) in ["v1", "v2", "v3"].into_iter().enumerate() {
        clock.advance_ms(1_000);
        let deployment = create(&store, digest, &[("api", &api), ("worker", &worker)]).await;
        assert_eq!(deployment.id, i as u64 + 1);
        assert_eq!(deployment.created_ms, START_MS + 1_000 * (i as u64 + 1));
        assert_eq!(deployment.digest, digest);
        made.push(deployment);
    }
    for deployment in &made {
        assert_eq!(
            store.deployment(deployment.id).await.unwrap().as_ref(),
            Some(deployment)
        );
    }
    let read = store.deployment(2).await.unwrap().unwrap();
    assert_eq!(read.manifest, new("v2", &[]).manifest);
    assert_eq!(
        read.components,
        BTreeMap::from([("api".to_owned(), api), ("worker".to_owned(), worker)])
    );
    assert_eq!(store.deployment(4).await.unwrap(), None);
    assert_eq!(store.deployment(0).await.unwrap(), None);
    assert_eq!(store.deployment(u64::MAX).await.unwrap(), None);
    // A deployment without functions is a version too.
    assert_eq!(create(&store, "empty", &[]).await.id, 4);
    assert!(
        store
            .deployment(4)
            .await
            .unwrap()
            .unwrap()
            .components
            .is_empty()
    );
}

pub async fn a_deployment_of_a_known_digest_is_the_one_made_before<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let api = put(&store, b"api").await;
    let first = create(&store, "v1", &[("api", &api)]).await;
    clock.advance_ms(60_000);
    let again = create(&store, "v1", &[("api", &api)]).await;
    assert_eq!(again, first, "the same version, with its first time");
    assert_eq!(store.deployments(10).await.unwrap().len(), 1);
    assert_eq!(create(&store, "v2", &[("api", &api)]).await.id, 2);
}

pub async fn activating_a_deployment_makes_it_the_active_one_by_the_store_clock<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let api = put(&store, b"api").await;
    create(&store, "v1", &[("api", &api)]).await;
    create(&store, "v2", &[("api", &api)]).await;
    assert_eq!(store.active_deployment_id().await.unwrap(), None);

    clock.advance_ms(1_000);
    store.activate(1).await.unwrap();
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(1));
    clock.advance_ms(1_000);
    store.activate(2).await.unwrap();
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(2));
    // A rollback: the older one again, at a new time.
    clock.advance_ms(1_000);
    store.activate(1).await.unwrap();
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(1));
    let listed = store.deployments(10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|d| (d.id, d.activated_ms, d.active))
            .collect::<Vec<_>>(),
        [
            (2, Some(START_MS + 2_000), false),
            (1, Some(START_MS + 3_000), true)
        ]
    );
}

pub async fn activating_an_unknown_deployment_is_refused_and_changes_nothing<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    assert_eq!(
        store.activate(1).await,
        Err(StoreError::DeploymentNotFound(1))
    );
    assert_eq!(store.active_deployment_id().await.unwrap(), None);
    create(&store, "v1", &[]).await;
    store.activate(1).await.unwrap();
    for id in [0, 2, u64::MAX] {
        assert_eq!(
            store.activate(id).await,
            Err(StoreError::DeploymentNotFound(id))
        );
    }
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(1));
}

pub async fn deployments_are_listed_newest_first_with_the_active_one_marked<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let api = put(&store, b"api").await;
    let worker = put(&store, b"worker").await;
    create(&store, "v1", &[("worker", &worker), ("api", &api)]).await;
    clock.advance_ms(1_000);
    create(&store, "v2", &[("api", &api)]).await;
    clock.advance_ms(1_000);
    create(&store, "v3", &[]).await;
    clock.advance_ms(1_000);
    store.activate(2).await.unwrap();

    let listed = store.deployments(10).await.unwrap();
    assert_eq!(
        listed,
        [
            DeploymentSummary {
                id: 3,
                created_ms: START_MS + 2_000,
                digest: "v3".to_owned(),
                functions: Vec::new(),
                activated_ms: None,
                active: false,
            },
            DeploymentSummary {
                id: 2,
                created_ms: START_MS + 1_000,
                digest: "v2".to_owned(),
                functions: vec!["api".to_owned()],
                activated_ms: Some(START_MS + 3_000),
                active: true,
            },
            DeploymentSummary {
                id: 1,
                created_ms: START_MS,
                digest: "v1".to_owned(),
                functions: vec!["api".to_owned(), "worker".to_owned()],
                activated_ms: None,
                active: false,
            },
        ]
    );
    assert_eq!(store.deployments(2).await.unwrap(), listed[..2]);
    assert!(store.deployments(0).await.unwrap().is_empty());
}

pub async fn pruning_keeps_the_newest_the_active_and_the_components_they_name<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let [a, b, c, d, shared] = [
        put(&store, b"a").await,
        put(&store, b"b").await,
        put(&store, b"c").await,
        put(&store, b"d").await,
        put(&store, b"shared").await,
    ];
    create(&store, "v1", &[("f", &a)]).await;
    create(&store, "v2", &[("f", &b), ("g", &shared)]).await;
    create(&store, "v3", &[("f", &c), ("g", &shared)]).await;
    create(&store, "v4", &[("f", &d)]).await;
    store.activate(1).await.unwrap();
    clock.advance_ms(COMPONENT_GRACE_MS + 1);

    // The newest two and the active one stay; v2 goes, and with it `b`,
    // but not `shared`, which v3 still names.
    assert_eq!(store.prune_deployments(2).await.unwrap(), 1);
    let ids: Vec<u64> = store
        .deployments(10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, [4, 3, 1]);
    assert_eq!(store.deployment(2).await.unwrap(), None);
    assert!(!kept(&store, &b).await);
    for digest in [&a, &c, &d, &shared] {
        assert!(kept(&store, digest).await, "{digest} is still named");
    }
    assert_eq!(store.prune_deployments(2).await.unwrap(), 0, "nothing more");

    // Keeping none still keeps the active one.
    assert_eq!(store.prune_deployments(0).await.unwrap(), 2);
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(1));
    assert!(store.deployment(1).await.unwrap().is_some());
    for digest in [&c, &d, &shared] {
        assert!(!kept(&store, digest).await, "{digest} is no longer named");
    }
    assert!(kept(&store, &a).await);

    // Ids are not reused, even of the newest deployments pruned.
    assert_eq!(create(&store, "v5", &[("f", &a)]).await.id, 5);
}

pub async fn a_component_just_put_or_asked_about_outlives_a_prune_for_its_grace<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    // Uploaded by a deploy that has not yet created its deployment.
    let fresh = put(&store, b"fresh").await;
    assert_eq!(store.prune_deployments(0).await.unwrap(), 0);
    assert!(kept(&store, &fresh).await, "within its grace");

    clock.advance_ms(COMPONENT_GRACE_MS);
    // A deploy asks about it: it is present, and wanted again.
    assert!(
        store
            .missing_components(std::slice::from_ref(&fresh))
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance_ms(COMPONENT_GRACE_MS - 1);
    store.prune_deployments(0).await.unwrap();
    assert!(kept(&store, &fresh).await, "asking renewed its grace");

    clock.advance_ms(1);
    store.prune_deployments(0).await.unwrap();
    assert!(!kept(&store, &fresh).await, "past its grace, unnamed");
}

pub async fn activation_wakes_the_waiters_of_the_deployment_signal<
    S: Store,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    create(&store, "v1", &[]).await;
    create(&store, "v2", &[]).await;
    for id in [1, 2, 1] {
        let signal = store.signals().get(DEPLOYMENT_SIGNAL);
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        store.activate(id).await.unwrap();
        tokio::time::timeout(PATIENCE, woken)
            .await
            .unwrap_or_else(|_| panic!("activating {id} did not wake `{DEPLOYMENT_SIGNAL}`"));
    }
}

pub async fn deployments_and_components_survive_reopening_the_store<
    S: DeploymentStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let api = put(&store, b"api").await;
    let made = create(&store, "v1", &[("api", &api)]).await;
    store.activate(made.id).await.unwrap();
    drop(store);

    let store = open(clock).await;
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(made.id));
    assert_eq!(store.deployment(made.id).await.unwrap(), Some(made));
    assert_eq!(
        store.component(&api).await.unwrap().as_deref(),
        Some(&b"api"[..])
    );
    assert_eq!(create(&store, "v2", &[]).await.id, 2);
}
