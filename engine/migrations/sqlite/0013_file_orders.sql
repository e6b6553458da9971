-- Listings sorted by name (GET /api/files?sort=name): an index search, not a sort of all the
-- user's files. (By size: user_files_by_user; by date: user_files_newest.)
CREATE INDEX user_files_by_name ON user_files (user_id, name);
