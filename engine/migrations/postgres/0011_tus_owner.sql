-- Open tus uploads count toward a user's session limit: counted per owner.
CREATE INDEX tus_uploads_by_owner ON tus_uploads (owner, file_id);
