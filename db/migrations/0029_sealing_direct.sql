-- +goose Up
-- Direct data onboarding (FIP-0076). manifest is the CBOR of a direct
-- piece's PieceActivationManifest (NULL for a market deal's piece, whose
-- proposal is in proposal); a sector holding one is proven with
-- ProveCommitSectors3 and the manifests of all its pieces. alloc_client
-- and alloc_id name the verified allocation the piece claims (0: none), a
-- direct piece's or the one a verified market deal made at publish, and
-- term_max is that allocation's TermMax, the longest the sector may live
-- after it is proven.
ALTER TABLE sealing_pieces ADD COLUMN manifest BLOB;
ALTER TABLE sealing_pieces ADD COLUMN alloc_client INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sealing_pieces ADD COLUMN alloc_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sealing_pieces ADD COLUMN term_max INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE sealing_pieces DROP COLUMN term_max;
ALTER TABLE sealing_pieces DROP COLUMN alloc_id;
ALTER TABLE sealing_pieces DROP COLUMN alloc_client;
ALTER TABLE sealing_pieces DROP COLUMN manifest;
