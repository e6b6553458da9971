-- What an append stream's whole content must hash to (`<algorithm>:<hex>`, from the IETF
-- protocol's `Repr-Digest`), checked before it is published; '' when the client named none.
ALTER TABLE uploads ADD COLUMN repr_digest TEXT NOT NULL DEFAULT '';
