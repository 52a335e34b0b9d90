-- +goose Up
-- OFFSET is a reserved word in PostgreSQL: the offsets take names of their
-- own. section_offset is where a block's CAR section starts in the piece
-- payload, segment_offset where a data segment starts in the aggregate's.
ALTER TABLE index_blocks RENAME COLUMN "offset" TO section_offset;
ALTER TABLE index_segments RENAME COLUMN "offset" TO segment_offset;

-- +goose Down
ALTER TABLE index_segments RENAME COLUMN segment_offset TO "offset";
ALTER TABLE index_blocks RENAME COLUMN section_offset TO "offset";
