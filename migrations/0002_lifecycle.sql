-- What each deactivation took away (groups, direct permissions, the staff flag),
-- so that reactivateUser(restoreAccess: true) gives back exactly that.
CREATE TABLE deactivations (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    group_ids      BIGINT[] NOT NULL,
    permission_ids BIGINT[] NOT NULL,
    staff_revoked  BOOLEAN NOT NULL,
    -- Set when a reactivation ends this deactivation (restoring or not).
    ended_at       TIMESTAMPTZ
);
CREATE INDEX deactivations_user_idx ON deactivations (user_id, id);
-- The users with one open deactivation record at most.
CREATE UNIQUE INDEX deactivations_open_unique ON deactivations (user_id) WHERE ended_at IS NULL;
