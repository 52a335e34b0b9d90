-- +goose Up
-- Pieces known to the piece directory. state is 'indexing' while rows are
-- being written and 'indexed' once every block of the piece is in.
CREATE TABLE index_pieces (
    id         INTEGER PRIMARY KEY,
    piece_cid  TEXT    NOT NULL UNIQUE,
    state      TEXT    NOT NULL,
    blocks     INTEGER NOT NULL DEFAULT 0,
    aggregate  INTEGER NOT NULL DEFAULT 0,
    indexed_at INTEGER NOT NULL DEFAULT 0,
    error      TEXT    NOT NULL DEFAULT ''
);

-- One row per block of a piece: the offset of the block's CAR section in the
-- piece payload and the size of the block data.
CREATE TABLE index_blocks (
    mh       BLOB    NOT NULL,
    piece_id INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    PRIMARY KEY (mh, piece_id)
) WITHOUT ROWID;
CREATE INDEX index_blocks_piece ON index_blocks (piece_id);

-- The roots named in the CAR headers of a piece (and of its sub-pieces).
CREATE TABLE index_roots (
    root     BLOB    NOT NULL,
    piece_id INTEGER NOT NULL,
    PRIMARY KEY (root, piece_id)
) WITHOUT ROWID;
CREATE INDEX index_roots_piece ON index_roots (piece_id);

-- FRC-0058 data segments found in aggregate pieces; offset and size are
-- unpadded bytes within the aggregate's payload.
CREATE TABLE index_segments (
    sub_piece_cid TEXT    NOT NULL,
    piece_id      INTEGER NOT NULL,
    "offset"      INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    blocks        INTEGER NOT NULL DEFAULT 0,
    error         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (sub_piece_cid, piece_id)
) WITHOUT ROWID;
CREATE INDEX index_segments_piece ON index_segments (piece_id);

-- +goose Down
DROP TABLE index_segments;
DROP TABLE index_roots;
DROP TABLE index_blocks;
DROP TABLE index_pieces;
