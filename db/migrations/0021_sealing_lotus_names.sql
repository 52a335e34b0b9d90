-- +goose Up
-- Sector states take Lotus' names: the pre-commit is sent in
-- SubmitPreCommitBatch and waited for in PreCommitBatchWait (lotus-miner's
-- states for PreCommitSectorBatch2), where one SubmitPreCommit state did both.
-- The SubmitPreCommitBatch step moves a sector whose message is recorded on
-- to the wait without sending again.
UPDATE sealing_sectors SET state = 'SubmitPreCommitBatch' WHERE state = 'SubmitPreCommit';

-- A piece row is 'reserved' from the moment its placement is decided until
-- its bytes are synced ('done'): it may wait for the sector's write turn, be
-- written, or have been interrupted. It was called 'writing'.
UPDATE sealing_pieces SET status = 'reserved' WHERE status = 'writing';

-- OFFSET is a reserved word in PostgreSQL.
ALTER TABLE sealing_pieces RENAME COLUMN "offset" TO piece_offset;

-- +goose Down
ALTER TABLE sealing_pieces RENAME COLUMN piece_offset TO "offset";
UPDATE sealing_pieces SET status = 'writing' WHERE status = 'reserved';
UPDATE sealing_sectors SET state = 'SubmitPreCommit' WHERE state IN ('SubmitPreCommitBatch', 'PreCommitBatchWait');
