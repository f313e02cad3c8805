//! Wake-ups between nodes with `LISTEN`/`NOTIFY`.
//!
//! A write that leaves work any node may take (participants queued or woken, a flow saved)
//! sends a notification on [`CHANNEL`] in its transaction, so it is delivered when the write
//! commits and never for a write rolled back. Its payload is the sending store's name, so
//! a node does not wake itself for work it is doing already. Each node listens on a
//! connection of its own (outside the pool), opened the first time its scheduler asks, and
//! bumps a [`watch`] value for every notification from another node. Notifications are
//! hints: a node that misses some (its connection dropped) bumps the value once it listens
//! again, and its scheduler's next round finds the work in any case.

use deadpool_postgres::GenericClient;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::db;
use flowhost_store::StoreError;

/// The one channel every node listens on.
pub(crate) const CHANNEL: &str = "flowhost_work";

/// How long a node waits before listening again after its connection dropped.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Tells the other nodes, when the transaction `client` is in commits, that there is work.
pub(crate) async fn notify(client: &impl GenericClient, node: &str) -> Result<(), StoreError> {
    let notify = client
        .prepare_cached("SELECT pg_notify($1, $2)")
        .await
        .map_err(db("waking the other nodes"))?;
    client
        .execute(&notify, &[&CHANNEL, &node])
        .await
        .map_err(db("waking the other nodes"))?;
    Ok(())
}

/// A node's listening connection, kept open while the store is.
pub(crate) struct Listener {
    signals: watch::Sender<u64>,
    /// Dropped with the store, which ends the listening task.
    _stop: oneshot::Sender<()>,
}

impl Listener {
    /// Starts listening in a task of the current runtime.
    pub(crate) fn start(config: tokio_postgres::Config, node: Arc<str>) -> Listener {
        let (signals, _) = watch::channel(0);
        let (stop_tx, stop) = oneshot::channel();
        tokio::spawn(listen(config, node, signals.clone(), stop));
        Listener {
            signals,
            _stop: stop_tx,
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.signals.subscribe()
    }
}

fn bump(signals: &watch::Sender<u64>) {
    signals.send_modify(|n| *n = n.wrapping_add(1));
}

async fn listen(
    config: tokio_postgres::Config,
    node: Arc<str>,
    signals: watch::Sender<u64>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = listen_once(&config, &node, &signals) => {}
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

/// Listens on one connection until it drops (or cannot be opened).
async fn listen_once(config: &tokio_postgres::Config, node: &str, signals: &watch::Sender<u64>) {
    let Ok((client, mut connection)) = config.connect(NoTls).await else {
        return;
    };
    let deliver = async {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.payload() != node => bump(signals),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    };
    let subscribe = async {
        if client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .is_ok()
        {
            // Work may have come while this node was not listening.
            bump(signals);
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = deliver => {}
        () = subscribe => {}
    }
}
