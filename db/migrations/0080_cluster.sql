-- +goose Up
-- cluster_nodes is every ferryd that ever ran on this database: its node
-- ID (kept in its repo), the roles it runs (comma-separated: market,
-- transfer, sealing, index, retrieval), where it serves its operator API
-- and its HTTP endpoint (retrievals and the files other nodes read), its
-- libp2p addresses, and its heartbeat (unix nanoseconds; 0 once it stopped
-- cleanly). A node whose heartbeat is older than the lease timeout is dead.
CREATE TABLE cluster_nodes (
    id           TEXT    PRIMARY KEY,
    roles        TEXT    NOT NULL,
    api_url      TEXT    NOT NULL DEFAULT '',
    http_url     TEXT    NOT NULL DEFAULT '',
    libp2p_addrs TEXT    NOT NULL DEFAULT '', -- space-separated multiaddrs
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

-- cluster_leases: a unit of work (a deal's next step, a sector, an
-- indexing job, the publisher) is done by the node holding its lease. A
-- node takes a lease when none is held or the holder's expired, renews
-- every lease it holds with its heartbeat, and gives them up when it
-- stops; a dead node's leases expire and another node takes them.
CREATE TABLE cluster_leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    taken_at   INTEGER NOT NULL, -- unix nanoseconds
    expires_at INTEGER NOT NULL  -- unix nanoseconds
);
CREATE INDEX cluster_leases_holder ON cluster_leases (holder);

-- cluster_paths are the storage paths of each node (staging, sectors): a
-- file lives on the node that wrote it, and other nodes read it from that
-- node's HTTP endpoint.
CREATE TABLE cluster_paths (
    node TEXT NOT NULL,
    kind TEXT NOT NULL, -- 'staging' or 'sectors'
    path TEXT NOT NULL,
    PRIMARY KEY (node, kind)
);

-- +goose Down
DROP TABLE cluster_paths;
DROP TABLE cluster_leases;
DROP TABLE cluster_nodes;
