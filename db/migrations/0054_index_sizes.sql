-- +goose Up
-- Pieces are indexed by their CID v1; piece_size (padded) and raw_size
-- (the payload's bytes) beside it make the piece CID v2 (FRC-0069), which
-- is shown and accepted too. piece_size 0: not known (a piece indexed
-- before the sizes were recorded, or by hand), and then neither is the v2.
ALTER TABLE index_pieces ADD COLUMN piece_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_pieces ADD COLUMN raw_size INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE index_pieces DROP COLUMN raw_size;
ALTER TABLE index_pieces DROP COLUMN piece_size;
