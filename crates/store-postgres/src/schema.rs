//! The schema, created once: nodes starting together take an advisory lock first, so one
//! creates it and the others find it.

/// Taken while the schema is created (any number, the same for every node).
pub(crate) const SCHEMA_LOCK: i64 = 0x666c_6f77_686f_7374;

/// Rows each analytics counter is spread over. Steps of many participants through one
/// element, on any node, would otherwise all wait for one row's lock; each participant
/// counts in the row its id picks ([`shard`]), and reads add the rows up.
pub(crate) const COUNTER_SHARDS: u32 = 16;

/// The counter row a participant counts in: FNV-1a of its id.
pub(crate) fn shard(participant: &str) -> i16 {
    let hash = participant.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash % COUNTER_SHARDS) as i16
}

/// Whether a database still has the counters of before [`COUNTER_SHARDS`] (one row per
/// counter), to be moved by [`MOVE_OLD_COUNTERS`].
pub(crate) const HAS_OLD_COUNTERS: &str = "SELECT COUNT(*) FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_name = 'version_counts'";

pub(crate) const MOVE_OLD_COUNTERS: &str = "
INSERT INTO step_counts (flow_id, version, element_id, exit, shard, n)
    SELECT flow_id, version, element_id, exit, 0, n FROM version_counts;
DROP TABLE version_counts;
";

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flows (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
ALTER TABLE flows ADD COLUMN IF NOT EXISTS changed BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS flow_versions (
    flow_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (flow_id, version)
);
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    seq BIGSERIAL,
    flow_id TEXT NOT NULL,
    flow_version BIGINT NOT NULL,
    person TEXT NOT NULL,
    variables TEXT NOT NULL,
    current TEXT,
    status TEXT NOT NULL,
    waiting_until BIGINT,
    steps BIGINT NOT NULL,
    element_state TEXT,
    wait_reason TEXT,
    wait_key TEXT,
    event TEXT,
    lease_owner TEXT,
    lease_expires BIGINT,
    epoch BIGINT NOT NULL DEFAULT 0,
    claimed_from TEXT,
    retried BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT
);
DROP INDEX IF EXISTS participants_due;
CREATE INDEX IF NOT EXISTS participants_due_order
    ON participants (status, waiting_until NULLS FIRST, seq);
CREATE INDEX IF NOT EXISTS participants_wait_key ON participants (wait_key, status);
CREATE INDEX IF NOT EXISTS participants_updated ON participants (status, updated_at);
CREATE INDEX IF NOT EXISTS participants_flow ON participants (flow_id, seq);
CREATE INDEX IF NOT EXISTS participants_flow_status ON participants (flow_id, status, flow_version, current);
CREATE INDEX IF NOT EXISTS participants_person ON participants ((person::json ->> 'id'), seq);
CREATE TABLE IF NOT EXISTS journey (
    participant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (participant_id, seq)
);
CREATE TABLE IF NOT EXISTS step_counts (
    flow_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    element_id TEXT NOT NULL,
    exit TEXT NOT NULL,
    shard SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (flow_id, version, element_id, exit, shard)
);
CREATE TABLE IF NOT EXISTS rate_queues (
    queue TEXT PRIMARY KEY,
    next_free BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_holds (
    queue TEXT NOT NULL,
    holder TEXT NOT NULL,
    slot BIGINT NOT NULL,
    PRIMARY KEY (queue, holder)
);
CREATE INDEX IF NOT EXISTS rate_holds_slot ON rate_holds (queue, slot);
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS person_contacts (
    contact TEXT PRIMARY KEY,
    person_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS person_contacts_person ON person_contacts (person_id);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq BIGSERIAL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS records_lookup ON records (kind, key, status);
CREATE TABLE IF NOT EXISTS holds (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
";
