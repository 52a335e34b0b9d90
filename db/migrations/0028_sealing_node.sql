-- +goose Up
-- node is the cluster node whose storage path holds the sector's files
-- ('' for sectors made before clusters: the first node to run sealing
-- adopts them, since their files are in its storage path). A node places
-- pieces only in its own sectors and drives only its own through their
-- states; other nodes read its unsealed copies from it.
ALTER TABLE sealing_sectors ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX sealing_sectors_node ON sealing_sectors (node, state);

-- +goose Down
DROP INDEX sealing_sectors_node;
ALTER TABLE sealing_sectors DROP COLUMN node;
