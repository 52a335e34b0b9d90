-- +goose Up
-- IPLD blocks of the advertisement chain (ads and entry chunks), dag-json.
CREATE TABLE ipni_blocks (
    cid  BLOB NOT NULL PRIMARY KEY,
    data BLOB NOT NULL
);

-- The advertisement chain in publication order; the head is the last row.
CREATE TABLE ipni_ads (
    seq        INTEGER PRIMARY KEY,
    ad_cid     TEXT    NOT NULL UNIQUE,
    context_id BLOB    NOT NULL,
    piece_cid  TEXT    NOT NULL,
    is_rm      INTEGER NOT NULL,
    entries    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- What is announced now for each context ID: the latest ad and whether the
-- content is still advertised (0 once a removal ad was published).
CREATE TABLE ipni_contexts (
    context_id BLOB    NOT NULL PRIMARY KEY,
    piece_cid  TEXT    NOT NULL,
    ad_cid     TEXT    NOT NULL,
    active     INTEGER NOT NULL
);

-- +goose Down
DROP TABLE ipni_contexts;
DROP TABLE ipni_ads;
DROP TABLE ipni_blocks;
