-- What an append stream's whole content must hash to (`<algorithm>:<hex>`, from the IETF
-- protocol's `Repr-Digest`), checked before it is published; '' when the client named none.
ALTER TABLE uploads ADD COLUMN repr_digest VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '';
