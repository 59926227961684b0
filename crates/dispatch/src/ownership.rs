//! Which node runs which singleton work. Work that one node at a time may
//! do (a stream lane) is a named unit held by lease in the store. Each
//! node takes free units up to its fair share (in each group of units, such
//! as one stream trigger's lanes, the group's units over the live nodes,
//! rounded up), renews what it holds in one request every quarter of
//! the lease period, and stops renewing its surplus when nodes join, so the
//! surplus lapses and the newcomers take it. A node counts a unit as lost
//! once its last renewal is older than the lease period less a margin, by
//! its own monotonic clock, so its work stops before the lease can pass to
//! another node; writes made under a unit carry its fence, which the store
//! refuses once the lease has changed hands.

use nimbus_store::lease::{Fence, LeaseStore};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The shortest wait between balancing rounds, so a lease about to lapse
/// is not polled in a tight loop.
const MIN_ROUND_GAP: Duration = Duration::from_millis(10);
/// How long after another owner's lease lapses (by the store's clock, as
/// this node reckons it) the round that may take it runs.
const LAPSE_MARGIN: Duration = Duration::from_millis(5);

/// The lease period when none is configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// Prefix of the lease each live node holds on its own name: the live
/// nodes are the holders of these.
pub const NODE_PREFIX: &str = "node:";

/// This node's hold on a unit: the fence its writes carry, valid until a
/// local deadline.
#[derive(Debug, Clone)]
pub struct Held {
    pub fence: Fence,
    until: Instant,
}

impl Held {
    fn valid(&self) -> bool {
        Instant::now() < self.until
    }
}

/// One unit of work as its worker sees it.
pub struct Unit {
    state: watch::Receiver<Option<Held>>,
    /// Set while the worker runs under a hold: a unit handed over is given
    /// back only once its worker has stopped.
    busy: Arc<AtomicBool>,
    balancer: Arc<tokio::sync::Notify>,
    /// The unit's registrations still alive: one with none left (its
    /// trigger is gone from the app being served) is given back.
    users: Arc<AtomicUsize>,
}

/// The next regular round gives a unit nobody registers back: not at once,
/// so a deployment's triggers replacing the last ones (registering the
/// same units a moment later) usually keep their holds.
impl Drop for Unit {
    fn drop(&mut self) {
        self.users.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Unit {
    /// Waits until this node holds the unit; `None` once `shutdown` is set.
    pub async fn acquired(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<Held> {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            if let Some(held) = self.state.borrow_and_update().clone()
                && held.valid()
            {
                self.busy.store(true, Ordering::SeqCst);
                return Some(held);
            }
            tokio::select! {
                changed = self.state.changed() => if changed.is_err() { return None },
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Whether `held` is still this node's current, unexpired hold.
    pub fn holds(&self, held: &Held) -> bool {
        self.state
            .borrow()
            .as_ref()
            .is_some_and(|now| now.fence == held.fence && now.valid())
    }

    /// The worker has stopped working under its last hold.
    pub fn done(&self) {
        self.busy.store(false, Ordering::SeqCst);
        self.balancer.notify_one();
    }

    /// Resolves when the hold changes (lost, renewed, or taken again).
    pub async fn changed(&mut self) {
        if self.state.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The units of this node and its view of the cluster.
pub struct Ownership {
    store: Arc<dyn LeaseStore>,
    node: String,
    /// The owner name of this process's leases: `NODE/INCARNATION`, new at
    /// every start, so a restarted node takes its leases back at once with
    /// new fences, and the process before it (should it still run) can
    /// neither renew them nor write under them.
    owner: String,
    lease: Duration,
    /// How long a lease lasts in the store, by the store's clock: the lease
    /// period, unless a test clock that jumps asks for more.
    store_ttl: Duration,
    units: Mutex<BTreeMap<String, UnitState>>,
    /// Wakes the balancer for a round at once (a unit was registered, or a
    /// worker stopped).
    wake: Arc<tokio::sync::Notify>,
    /// The fence of this node's own lease, given back at shutdown so the
    /// other nodes count one node less at once.
    node_fence: Mutex<Option<u64>>,
}

impl Ownership {
    pub fn new(store: Arc<dyn LeaseStore>, node: &str, lease: Duration) -> Arc<Self> {
        Self::with_store_ttl(store, node, lease, lease)
    }

    /// [`Ownership::new`] with leases that last `store_ttl` by the store's
    /// clock. For `--test-clock` only: that clock jumps (by minutes, by
    /// days) where a real one would pass while the node renewed, so a live
    /// node's leases must outlast any jump; its holds still end by its own
    /// clock after `lease` without renewal, so its work stops as it would.
    pub fn with_store_ttl(
        store: Arc<dyn LeaseStore>,
        node: &str,
        lease: Duration,
        store_ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Ownership {
            store,
            node: node.to_owned(),
            owner: format!(
                "{node}{}{}",
                nimbus_store::lease::INCARNATION_SEPARATOR,
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            lease,
            store_ttl: store_ttl.max(lease),
            units: Mutex::new(BTreeMap::new()),
            wake: Arc::new(tokio::sync::Notify::new()),
            node_fence: Mutex::new(None),
        })
    }

    /// Registers the unit `name` and returns its view; the unit stays this
    /// node's to balance while any view of it is alive. Once none is (its
    /// trigger stopped, as when a deployment is replaced), the next round
    /// gives its lease back, and a worker registering it again takes it
    /// anew (here or on another node).
    pub fn unit(&self, name: &str) -> Unit {
        let mut units = self.units.lock().unwrap();
        let state = units.entry(name.to_owned()).or_insert_with(|| UnitState {
            hold: watch::channel(None).0,
            busy: Arc::new(AtomicBool::new(false)),
            users: Arc::new(AtomicUsize::new(0)),
        });
        state.users.fetch_add(1, Ordering::SeqCst);
        let unit = Unit {
            state: state.hold.subscribe(),
            busy: state.busy.clone(),
            balancer: self.wake.clone(),
            users: state.users.clone(),
        };
        // A new unit starts without waiting for the next periodic round.
        self.wake.notify_one();
        unit
    }

    /// Runs `job` every `every` while this node holds the unit `name`, so
    /// one node at a time does it (a sweeper, say), until `shutdown`. A job
    /// under way when the hold ends finishes; the next waits for a new hold.
    pub async fn singleton<F, Fut>(
        self: Arc<Self>,
        name: &str,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
        mut job: F,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut unit = self.unit(name);
        while let Some(held) = unit.acquired(&mut shutdown).await {
            let mut tick = tokio::time::interval(every);
            while unit.holds(&held) && !*shutdown.borrow() {
                tokio::select! {
                    _ = tick.tick() => if unit.holds(&held) { job().await },
                    _ = shutdown.changed() => {}
                    () = unit.changed() => {}
                }
            }
            unit.done();
        }
    }

    /// Balances units until `shutdown`, then gives up what it holds so
    /// other nodes take over at once instead of after the lease lapses.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut balance = Balance::default();
        loop {
            // Every quarter lease, or sooner when a lease of another node's
            // lapses before then: a dead node's work moves as soon as its
            // leases let it, not up to a quarter lease later.
            let wait = match self.round(&mut balance).await {
                Some(lapse) => lapse.clamp(MIN_ROUND_GAP, self.lease / 4),
                None => self.lease / 4,
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                _ = shutdown.changed() => break,
            }
        }
        self.release_all().await;
    }

    /// Ends every held lease, this node's own last (at shutdown, after the
    /// workers stopped).
    async fn release_all(&self) {
        let mut held: Vec<(String, u64)> = {
            let units = self.units.lock().unwrap();
            units
                .iter()
                .filter_map(|(name, unit)| {
                    unit.hold
                        .send_replace(None)
                        .map(|h| (name.clone(), h.fence.token))
                })
                .collect()
        };
        if let Some(fence) = *self.node_fence.lock().unwrap() {
            held.push((format!("{NODE_PREFIX}{}", self.node), fence));
        }
        for (name, fence) in held {
            if let Err(e) = self.store.release_lease(&name, &self.owner, fence).await {
                tracing::debug!(lease = %name, "could not release the lease: {e}");
            }
        }
    }

    /// Renews, counts the live nodes, and takes or sheds units to reach
    /// this node's share. Returns how long until the first lease held by
    /// another owner (another node's own lease, or a unit registered here)
    /// lapses, by the store's clock, if the round got that far.
    async fn round(&self, balance: &mut Balance) -> Option<Duration> {
        let started = Instant::now();
        let until = started + self.lease - self.lease / 5;
        let ttl_ms = self.store_ttl.as_millis() as u64;
        let node_lease = format!("{NODE_PREFIX}{}", self.node);
        // The store's time now, read from the expiry it just gave this
        // node's own lease, paired with the local instant after the answer
        // (so a lapse computed from it is never early).
        let store_now = match self
            .store
            .acquire_lease(&node_lease, &self.owner, ttl_ms)
            .await
        {
            Ok(lease) => {
                let answered = Instant::now();
                let now = lease
                    .as_ref()
                    .map(|l| (l.expires_at.saturating_sub(ttl_ms), answered));
                *self.node_fence.lock().unwrap() = lease.map(|l| l.fence);
                now
            }
            Err(e) => {
                balance.failed(&e);
                return None;
            }
        };
        self.retire(balance);
        let held: Vec<String> = {
            let units = self.units.lock().unwrap();
            units
                .iter()
                .filter(|(_, unit)| unit.hold.borrow().is_some())
                .map(|(name, _)| name.clone())
                .collect()
        };
        let renewed = match self.store.renew_leases(&self.owner, &held, ttl_ms).await {
            Ok(renewed) => renewed,
            Err(e) => {
                // Holds stay valid until their deadline; past it, workers
                // stop by themselves.
                balance.failed(&e);
                return None;
            }
        };
        let all = match self.store.leases("").await {
            Ok(all) => all,
            Err(e) => {
                balance.failed(&e);
                return None;
            }
        };
        let live = all
            .iter()
            .filter(|l| l.name.starts_with(NODE_PREFIX))
            .count()
            .max(1);
        let next_lapse = store_now.and_then(|(now, at)| {
            let units = self.units.lock().unwrap();
            all.iter()
                .filter(|l| l.owner != self.owner)
                .filter(|l| l.name.starts_with(NODE_PREFIX) || units.contains_key(&l.name))
                .map(|l| l.expires_at)
                .min()
                .map(|lapses| {
                    let ahead = Duration::from_millis(lapses.saturating_sub(now));
                    (at + ahead + LAPSE_MARGIN).saturating_duration_since(Instant::now())
                })
        });
        balance.recovered();
        let renewed: HashMap<String, Fence> = renewed
            .into_iter()
            .map(|l| (l.name.clone(), l.fence()))
            .collect();
        // Shares are per group (one stream trigger's lanes, the schedules,
        // the sweepers), so each kind of work spreads over the nodes.
        let mut share: HashMap<String, usize> = HashMap::new();
        for name in self.units.lock().unwrap().keys() {
            *share.entry(group(name)).or_default() += 1;
        }
        for units in share.values_mut() {
            *units = units.div_ceil(live);
        }
        let mut holding: HashMap<String, usize> = HashMap::new();
        {
            let units = self.units.lock().unwrap();
            for (name, unit) in units.iter() {
                let tx = &unit.hold;
                let held = holding.entry(group(name)).or_default();
                match renewed.get(name) {
                    Some(fence) if *held < share[&group(name)] => {
                        *held += 1;
                        tx.send_replace(Some(Held {
                            fence: fence.clone(),
                            until,
                        }));
                    }
                    Some(fence) => {
                        // Surplus: no longer renewed; given back once its
                        // worker has stopped (or it lapses), and a node with
                        // less than its share takes it.
                        tracing::info!(lease = %name, node = %self.node, "handing the unit over to a node with less work");
                        tx.send_replace(None);
                        balance.shed(name, fence.token, started + self.lease);
                    }
                    None => {
                        if tx.send_replace(None).is_some() {
                            tracing::warn!(lease = %name, node = %self.node, "lost the unit's lease: its work stopped here");
                        }
                    }
                }
            }
        }
        self.give_back(balance).await;
        let free: Vec<String> = {
            let units = self.units.lock().unwrap();
            units
                .iter()
                .filter(|(name, unit)| unit.hold.borrow().is_none() && !balance.is_shed(name))
                .map(|(name, _)| name.clone())
                .collect()
        };
        // Start at a place of this node's own, so nodes starting together
        // do not all race for the same units first.
        let offset = free
            .len()
            .checked_sub(1)
            .map_or(0, |_| spread(&self.node) % free.len());
        for name in free.iter().cycle().skip(offset).take(free.len()) {
            let key = group(name);
            if holding.get(&key).copied().unwrap_or(0) >= share[&key] {
                continue;
            }
            let asked = Instant::now();
            match self.store.acquire_lease(name, &self.owner, ttl_ms).await {
                Ok(Some(lease)) => {
                    *holding.entry(key).or_default() += 1;
                    tracing::info!(lease = %name, node = %self.node, fence = lease.fence, "took the unit's lease");
                    if let Some(unit) = self.units.lock().unwrap().get(name) {
                        unit.hold.send_replace(Some(Held {
                            fence: lease.fence(),
                            until: asked + self.lease - self.lease / 5,
                        }));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    balance.failed(&e);
                    return None;
                }
            }
        }
        next_lapse
    }
}

impl Ownership {
    /// Forgets units no worker registers any more (their trigger left the
    /// app being served); a held one is handed back like surplus, so it is
    /// released now rather than renewed for ever.
    fn retire(&self, balance: &mut Balance) {
        let mut units = self.units.lock().unwrap();
        let retired: Vec<String> = units
            .iter()
            .filter(|(_, unit)| unit.users.load(Ordering::SeqCst) == 0)
            .map(|(name, _)| name.clone())
            .collect();
        for name in retired {
            let Some(unit) = units.remove(&name) else {
                continue;
            };
            if let Some(held) = unit.hold.borrow().as_ref() {
                tracing::info!(lease = %name, node = %self.node, "giving up the unit: no trigger runs it any more");
                balance.shed(&name, held.fence.token, Instant::now() + self.lease);
            }
        }
    }

    /// Releases units handed over whose workers have stopped, so the nodes
    /// taking them need not wait for the leases to lapse; forgets those that
    /// lapsed.
    async fn give_back(&self, balance: &mut Balance) {
        let idle: Vec<(String, u64)> = {
            let units = self.units.lock().unwrap();
            balance
                .shed
                .iter()
                .filter(|(name, _)| {
                    units
                        .get(*name)
                        .is_none_or(|u| !u.busy.load(Ordering::SeqCst))
                })
                .map(|(name, (fence, _))| (name.clone(), *fence))
                .collect()
        };
        for (name, fence) in idle {
            match self.store.release_lease(&name, &self.owner, fence).await {
                Ok(()) => {
                    balance.shed.remove(&name);
                }
                Err(e) => tracing::debug!(lease = %name, "could not release the lease: {e}"),
            }
        }
        balance.forget_lapsed();
    }
}

/// A registered unit: this node's hold on it, whether its worker runs,
/// and how many views of it are alive.
struct UnitState {
    hold: watch::Sender<Option<Held>>,
    busy: Arc<AtomicBool>,
    users: Arc<AtomicUsize>,
}

/// The group a unit's share is counted in: its name up to the last `:`
/// (`stream:TABLE:FUNCTION` for a lane, `schedule`, `sweep`).
fn group(name: &str) -> String {
    name.rsplit_once(':')
        .map_or(name, |(group, _)| group)
        .to_owned()
}

/// A stable number from a node id.
fn spread(node: &str) -> usize {
    node.bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
}

/// What the balancing rounds remember between them.
#[derive(Default)]
struct Balance {
    /// Units handed over, with their fence, until their worker stopped and
    /// they were released, or their lease lapsed: not taken back before.
    shed: HashMap<String, (u64, Instant)>,
    /// Whether the last round failed (to log a failure once, not each round).
    failing: bool,
}

impl Balance {
    fn shed(&mut self, name: &str, fence: u64, lapses: Instant) {
        self.shed.insert(name.to_owned(), (fence, lapses));
    }

    fn is_shed(&self, name: &str) -> bool {
        self.shed.contains_key(name)
    }

    fn forget_lapsed(&mut self) {
        let now = Instant::now();
        self.shed.retain(|_, (_, lapses)| *lapses > now);
    }

    fn failed(&mut self, e: &nimbus_store::StoreError) {
        if !self.failing {
            tracing::error!(
                "cannot renew or take leases: {e}; work held here stops when its leases run out"
            );
        }
        self.failing = true;
    }

    fn recovered(&mut self) {
        if self.failing {
            tracing::info!("reached the store again: renewing and taking leases");
        }
        self.failing = false;
    }
}
