-- +goose Up
-- sealing_sectors is one row per sector the sealing subsystem created; state
-- is the sector state machine's current state (WaitDeals, AddPiece, Packing,
-- …, Proving). Message CIDs are recorded before a step waits on them, and the
-- MsgUuid before a message is pushed, so a restart never sends a duplicate.
CREATE TABLE sealing_sectors (
    number           INTEGER PRIMARY KEY,
    state            TEXT    NOT NULL,
    seal_proof       INTEGER NOT NULL,
    opened_at        INTEGER NOT NULL, -- unix nanoseconds
    updated_at       INTEGER NOT NULL, -- unix nanoseconds
    pack_reason      TEXT    NOT NULL DEFAULT '',
    ticket_epoch     INTEGER NOT NULL DEFAULT -1,
    comm_d           TEXT    NOT NULL DEFAULT '',
    comm_r           TEXT    NOT NULL DEFAULT '',
    precommit_uuid   TEXT    NOT NULL DEFAULT '',
    precommit_msg    TEXT    NOT NULL DEFAULT '',
    precommit_epoch  INTEGER NOT NULL DEFAULT -1,
    seed_epoch       INTEGER NOT NULL DEFAULT -1,
    proof            BLOB,
    commit_uuid      TEXT    NOT NULL DEFAULT '',
    commit_msg       TEXT    NOT NULL DEFAULT '',
    retries          INTEGER NOT NULL DEFAULT 0,
    retry_after      INTEGER NOT NULL DEFAULT 0, -- unix nanoseconds
    last_error       TEXT    NOT NULL DEFAULT '',
    unsealed_removed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sealing_sectors_state ON sealing_sectors (state);

-- sealing_pieces lists what occupies each sector, in padded bytes: deal
-- pieces and the zero filler pieces that align them. status is 'writing'
-- from the moment a placement is decided (the intent) until the bytes are
-- synced to the unsealed file, then 'done'.
CREATE TABLE sealing_pieces (
    sector        INTEGER NOT NULL REFERENCES sealing_sectors (number),
    "offset"      INTEGER NOT NULL, -- padded
    size          INTEGER NOT NULL, -- padded
    kind          TEXT    NOT NULL, -- 'deal' | 'filler'
    status        TEXT    NOT NULL, -- 'writing' | 'done'
    piece_cid     TEXT    NOT NULL,
    deal_uuid     TEXT    UNIQUE,
    deal_id       INTEGER,
    publish_cid   TEXT    NOT NULL DEFAULT '',
    start_epoch   INTEGER NOT NULL DEFAULT 0,
    end_epoch     INTEGER NOT NULL DEFAULT 0,
    keep_unsealed INTEGER NOT NULL DEFAULT 1,
    proposal      BLOB,
    error         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (sector, "offset")
);
CREATE UNIQUE INDEX sealing_pieces_deal_id ON sealing_pieces (deal_id) WHERE deal_id IS NOT NULL AND deal_id > 0;
CREATE INDEX sealing_pieces_piece_cid ON sealing_pieces (piece_cid);

-- +goose Down
DROP TABLE sealing_pieces;
DROP TABLE sealing_sectors;
