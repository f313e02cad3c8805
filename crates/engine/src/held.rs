//! A participant entered by [`Engine::start_at`] is not stored at once: see [`Held`].

use super::*;

/// The lease a run holds, and whether its participant is stored yet. A participant entered
/// by [`Engine::start_at`] is inserted with its first write, or as it entered (claimed, the
/// steps so far left to the next write) just before its first step with outside effects if
/// that comes first: a run of steps without outside effects from the entry point to a wait
/// or the end is then one write. A crash before that write loses a participant nobody has
/// heard of: the caller is answered only after it.
pub(super) struct Held {
    pub(super) lease: Lease,
    /// The participant as it entered, while it is not stored.
    pub(super) entered: Option<ParticipantState>,
}

impl Held {
    pub(super) fn stored(&self) -> bool {
        self.entered.is_none()
    }
}

impl Engine {
    /// Stores a participant entered by this run as it entered, claimed (see [`Held`]).
    pub(super) async fn store_entered(&self, held: &mut Held) -> Result<(), EngineError> {
        if let Some(entered) = held.entered.take() {
            held.lease = self
                .inner
                .store
                .insert_claimed(&entered, &self.inner.owner, self.lease_expiry())
                .await?;
        }
        Ok(())
    }
}
