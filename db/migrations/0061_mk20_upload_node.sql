-- +goose Up
-- node is the cluster node that receives an upload: its chunks are a file
-- of that node's staging directory, so its chunks, its finalize and its
-- hand-off are that node's ('' on a single node).
ALTER TABLE mk20_uploads ADD COLUMN node TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE mk20_uploads DROP COLUMN node;
