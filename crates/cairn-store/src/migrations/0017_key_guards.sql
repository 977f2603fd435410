-- Guards set on a key (JSON of `GuardSettings`; NULL: none), tightening its aliases' own.
ALTER TABLE api_keys ADD COLUMN guards TEXT;
