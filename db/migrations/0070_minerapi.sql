-- +goose Up
-- minerapi_deals records each deal the market handed to a remote sealer
-- (lotus-miner, or a ferryd serving its API): a row is written before the
-- first SectorAddPieceToAny call (sector NULL: handed over, placement not
-- known yet) and completed with the placement the miner reported or the
-- lookup found, so a deal is never added twice and its sector can be
-- followed by deal UUID.
CREATE TABLE minerapi_deals (
    deal_uuid     TEXT    PRIMARY KEY,
    deal_id       INTEGER NOT NULL,
    publish_cid   TEXT    NOT NULL,
    piece_cid     TEXT    NOT NULL,
    piece_size    INTEGER NOT NULL, -- padded
    sector        INTEGER,
    sector_offset INTEGER,          -- padded
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL, -- unix nanoseconds
    updated_at    INTEGER NOT NULL  -- unix nanoseconds
);
CREATE INDEX minerapi_deals_piece_cid ON minerapi_deals (piece_cid);

-- +goose Down
DROP TABLE minerapi_deals;
