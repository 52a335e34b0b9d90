-- +goose Up
-- db_locks has a row per name under which transactions are made serial
-- (db.Serialize): a transaction updates its name's row first and so holds
-- that row's lock until it ends. taken only counts.
CREATE TABLE db_locks (
    name  TEXT    PRIMARY KEY,
    taken INTEGER NOT NULL
);

-- +goose Down
DROP TABLE db_locks;
