-- +goose Up
-- market_deals is one row per accepted storage deal. checkpoint is the last
-- step the pipeline finished (Accepted, Transferred, Published,
-- PublishConfirmed, AddedPiece, IndexedAndAnnounced, Complete); retry says
-- what happens after an error: '' (running), 'auto' (retried after
-- retry_after), 'manual' (waits for an operator), 'fatal' (failed for good).
CREATE TABLE market_deals (
    uuid                TEXT    PRIMARY KEY,
    signed_proposal_cid TEXT    NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL, -- unix nanoseconds
    updated_at          INTEGER NOT NULL, -- unix nanoseconds
    client_peer         TEXT    NOT NULL,
    client_key          TEXT    NOT NULL, -- the client's key address, for status signatures
    proposal            BLOB    NOT NULL, -- CBOR of the ClientDealProposal
    piece_cid           TEXT    NOT NULL,
    piece_size          INTEGER NOT NULL,
    start_epoch         INTEGER NOT NULL,
    end_epoch           INTEGER NOT NULL,
    verified            INTEGER NOT NULL,
    data_root           TEXT    NOT NULL,
    is_offline          INTEGER NOT NULL,
    transfer_type       TEXT    NOT NULL DEFAULT '',
    transfer_params     BLOB,
    transfer_size       INTEGER NOT NULL DEFAULT 0,
    bytes_received      INTEGER NOT NULL DEFAULT 0,
    staging_path        TEXT    NOT NULL DEFAULT '',
    staging_owned       INTEGER NOT NULL DEFAULT 1, -- 0: an imported file we must not delete
    keep_unsealed       INTEGER NOT NULL,
    skip_ipni           INTEGER NOT NULL,
    checkpoint          TEXT    NOT NULL,
    retry               TEXT    NOT NULL DEFAULT '',
    retries             INTEGER NOT NULL DEFAULT 0,
    retry_after         INTEGER NOT NULL DEFAULT 0, -- unix nanoseconds
    error               TEXT    NOT NULL DEFAULT '',
    publish_queued      INTEGER NOT NULL DEFAULT 0, -- waiting for a publish batch
    batch_id            INTEGER,
    publish_cid         TEXT    NOT NULL DEFAULT '',
    chain_deal_id       INTEGER NOT NULL DEFAULT 0,
    sector              INTEGER NOT NULL DEFAULT -1,
    sector_offset       INTEGER NOT NULL DEFAULT 0,
    sealing_state       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX market_deals_active ON market_deals (retry, checkpoint);
CREATE INDEX market_deals_publish ON market_deals (publish_queued);

-- Tags reserve what an accepted deal will need until it no longer needs it:
-- provider collateral and the publish fee until the publish message lands,
-- staging bytes until the piece is in a sector. attoFIL amounts do not fit
-- in 64 bits, so each is split into nanoFIL and the attoFIL remainder
-- (amount = nano * 10^9 + atto); both columns sum exactly in SQL.
CREATE TABLE market_funds_tags (
    uuid            TEXT    PRIMARY KEY REFERENCES market_deals (uuid),
    collateral_nano INTEGER NOT NULL,
    collateral_atto INTEGER NOT NULL,
    fee_nano        INTEGER NOT NULL,
    fee_atto        INTEGER NOT NULL
);
CREATE TABLE market_space_tags (
    uuid  TEXT    PRIMARY KEY REFERENCES market_deals (uuid),
    bytes INTEGER NOT NULL
);

-- market_publish_batches records each PublishStorageDeals message before it
-- is pushed: the signed message and its CID, so that after a crash it is
-- looked up (StateSearchMsg) or pushed again, never re-signed.
CREATE TABLE market_publish_batches (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    msg_cid    TEXT    NOT NULL,
    signed_msg BLOB    NOT NULL, -- CBOR of the chain.SignedMessage
    deals      TEXT    NOT NULL, -- JSON list of deal UUIDs in proposal order
    state      TEXT    NOT NULL, -- signed, pushed, landed, failed
    error      TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE market_deal_logs (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT    NOT NULL,
    at   INTEGER NOT NULL, -- unix nanoseconds
    text TEXT    NOT NULL
);
CREATE INDEX market_deal_logs_uuid ON market_deal_logs (uuid, id);

-- market_ask holds the current signed ask: CBOR of a wire.SignedStorageAsk.
CREATE TABLE market_ask (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    ask BLOB NOT NULL
);

-- +goose Down
DROP TABLE market_ask;
DROP TABLE market_deal_logs;
DROP TABLE market_publish_batches;
DROP TABLE market_space_tags;
DROP TABLE market_funds_tags;
DROP TABLE market_deals;
