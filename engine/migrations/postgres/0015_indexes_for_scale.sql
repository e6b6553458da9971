-- A request costs the same whether the user holds ten files or a million: every hot query is an
-- index search in the order it asks for, `id` included (the tie-break of equal timestamps,
-- names and sizes), so nothing scans or sorts a user's files. (InnoDB appends the primary key
-- to secondary indexes anyway; SQLite and PostgreSQL need it spelled out.)

-- The user's newest file with some content: download, meta, rename and delete by SHA1.
CREATE INDEX user_files_by_content ON user_files (user_id, sha1, uploaded_at, id);
-- Listings by date, name and size, with their keyset cursors.
DROP INDEX user_files_newest;
CREATE INDEX user_files_newest ON user_files (user_id, uploaded_at, id);
DROP INDEX user_files_by_name;
CREATE INDEX user_files_by_name ON user_files (user_id, name, id);
DROP INDEX user_files_by_user;
CREATE INDEX user_files_by_user ON user_files (user_id, size, id);

-- The sweeps read what expired in bounded batches, oldest first.
CREATE INDEX upload_results_expiry ON upload_results (keep_until);
CREATE INDEX proof_challenges_expiry ON proof_challenges (expires_at);
CREATE INDEX proof_failures_by_age ON proof_failures (at);
CREATE INDEX blob_gc_oldest ON blob_gc (created_at, location);

-- A user's open uploads, oldest first (the per-user list and limit): no sort.
DROP INDEX uploads_open;
CREATE INDEX uploads_open ON uploads (owner, file_id, created_at, id);
-- The outbox relay reads the due jobs in (due_at, sha1, to_store) order: no sort.
DROP INDEX transfer_outbox_due;
CREATE INDEX transfer_outbox_due ON transfer_outbox (due_at, sha1, to_store);
-- The orphan scan asks, for each stored object, whether a blob records it.
CREATE INDEX blobs_by_location ON blobs (store, location);
-- The foreign key user_files.sha1 → blobs: deleting a blob's row (its last reference gone)
-- checks that no user file still names it; without an index on the child column that check
-- reads every user file. (InnoDB makes this index for the constraint by itself.)
CREATE INDEX user_files_by_sha1 ON user_files (sha1);
