-- +goose Up
-- market_staging_reservations is staging space reserved before the deal
-- that will use it exists: a front end that receives a deal's data itself
-- (httpdeal's Market 2.0 uploads, and its downloads) reserves the bytes
-- under its own id when it accepts the deal, and names that id when it
-- hands the deal to the market (ImportDirect's Reservation). The
-- transaction that records the deal deletes the reservation and inserts
-- the deal's market_space_tags row, so the bytes are counted once, always:
-- admission sums both tables.
CREATE TABLE market_staging_reservations (
    id         TEXT    PRIMARY KEY, -- the front end's name for the deal (an mk20 ULID)
    bytes      INTEGER NOT NULL,
    created_at INTEGER NOT NULL    -- unix nanoseconds
);

-- +goose Down
DROP TABLE market_staging_reservations;
