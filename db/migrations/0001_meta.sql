-- +goose Up
-- kv holds small facts about this repo (e.g. the miner address chosen at
-- first start).
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE kv;
