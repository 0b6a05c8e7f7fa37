-- Deletion plans count every session of a user, revoked or not; the partial
-- index of live sessions cannot serve that count.
CREATE INDEX sessions_user_all_idx ON sessions (user_id);
