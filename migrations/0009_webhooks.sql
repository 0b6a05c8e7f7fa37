-- Signed lifecycle webhooks out: the endpoints superusers register, and an
-- outbox of deliveries the audit log fills itself.
--
-- Every lifecycle change memberdesk makes writes its audit entry inside the
-- change's own transaction (domain layer). So the outbox is filled by a
-- trigger on audit_entries: a delivery exists exactly when the change
-- committed (a rolled-back change leaves neither entry nor delivery), and no
-- code path, present or future, can change a user without telling the
-- endpoints. A statement-level trigger with a transition table writes a
-- bulk operation's events in one INSERT.
--
-- (Numbered 0009: 0008 is the SCIM migration, developed alongside; sqlx
-- applies whichever of the two is missing, in any order.)

-- An endpoint. `created_by` is the creator's id as a plain value, like the
-- audit log's kept ids: deleting that user neither blocks nor is blocked by
-- it, and it is nothing personal. The secret is the Standard Webhooks
-- signing key (`whsec_…`); the API shows it once, on creation.
CREATE TABLE webhooks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT[] NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  BIGINT,
    disabled    BOOLEAN NOT NULL DEFAULT false
);

-- The events an endpoint may subscribe to, and the audit action each one
-- reports: the one list the API validates against and the trigger reads.
CREATE TABLE webhook_events (
    event  TEXT PRIMARY KEY,
    action TEXT NOT NULL UNIQUE
);
INSERT INTO webhook_events (event, action) VALUES
    ('user.created', 'USER_CREATED'),
    ('user.updated', 'USER_UPDATED'),
    ('user.deactivated', 'USER_DEACTIVATED'),
    ('user.reactivated', 'USER_REACTIVATED'),
    ('user.deleted', 'USER_DELETED'),
    ('user.anonymized', 'USER_ANONYMIZED'),
    ('user.erasure_requested', 'ERASURE_REQUESTED'),
    ('group.deleted', 'GROUP_DELETED'),
    ('question.deleted', 'QUESTION_DELETED');

-- One event for one endpoint: the change it reports (`audit_entry_id`, a
-- plain value: entries are never deleted) and the event it is. The body is
-- not stored: it is made from the audit entry at each attempt
-- (`webhook_payload`), so the outbox row is small and cheap to write in the
-- change's transaction, and once an erasure has redacted the entry (migration
-- 0006) no attempt or listing can show the old name. The `webhook-id` is
-- `msg_<audit_entry_id>`: the same for every attempt and redelivery of the
-- event, the receiver's idempotency key. `next_attempt_at` is also the lease
-- of the instance sending it (pushed forward when claimed).
--
-- `webhook_id` has no foreign key, on purpose: its check would cost every
-- audited change a lookup per event (a tenth of a bulk deactivation), and a
-- change racing `deleteWebhook` would fail on it. `deleteWebhook` removes
-- the endpoint's deliveries itself; a delivery queued by a change that
-- committed just after it names no endpoint, and every read joins
-- `webhooks`, so it is never sent or shown.
CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       BIGINT NOT NULL,
    audit_entry_id   BIGINT NOT NULL,
    event            TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts         INT NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    give_up_at       TIMESTAMPTZ NOT NULL DEFAULT now() + interval '24 hours',
    last_status_code INT,
    last_error       TEXT,
    delivered_at     TIMESTAMPTZ
);
-- An endpoint's history, newest first, and the head of its queue.
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id) WHERE status = 'PENDING';

-- Every attempt at a delivery, as it went.
CREATE TABLE webhook_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE RESTRICT,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    status_code INT,
    error       TEXT,
    duration_ms INT NOT NULL
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);

-- The API's opaque id of a record (`ids::encode` in Rust: URL-safe base64,
-- unpadded, of "Kind:id"; a test holds the two equal).
CREATE FUNCTION api_id(kind text, id bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN id IS NULL THEN NULL ELSE
        rtrim(translate(encode(convert_to(kind || ':' || id, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
    END
$$;

-- What an endpoint receives for entry e (the Standard Webhooks shape: type,
-- timestamp, data), made at each attempt: ids, the username the entry holds
-- (the pseudonym once the person is erased), the actor, and the entry's
-- details as what changed. Nothing else of the person: details hold names of fields,
-- groups and permissions, not their values, and lose even that on erasure.
CREATE FUNCTION webhook_payload(e audit_entries, event text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', event,
        'timestamp', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'data', jsonb_strip_nulls(jsonb_build_object(
            'auditEntryId', api_id('AuditEntry', e.id),
            'user', CASE WHEN e.target_user_ref IS NOT NULL THEN
                        jsonb_build_object('id', api_id('User', e.target_user_ref), 'username', e.target_repr)
                    END,
            'group', CASE WHEN e.action = 'GROUP_DELETED' THEN
                         jsonb_build_object('id', api_id('Group', (e.details->>'groupId')::bigint))
                     END,
            'question', CASE WHEN e.action = 'QUESTION_DELETED' THEN
                            jsonb_build_object('id', api_id('Question', (e.details->>'questionId')::bigint))
                        END,
            'target', e.target_repr,
            'actor', jsonb_build_object('id', api_id('User', e.actor_ref), 'username', e.actor_username),
            'changes', e.details
        ))
    )
$$;

-- The outbox, filled in the transaction that writes the entries: one
-- delivery per entry whose action is an event and per endpoint subscribed to
-- it, in entry order.
CREATE FUNCTION webhook_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, audit_entry_id, event)
    SELECT w.id, e.id, k.event
      FROM written e
      JOIN webhook_events k ON k.action = e.action
      JOIN webhooks w ON k.event = ANY (w.events) AND NOT w.disabled
     ORDER BY e.id, w.id;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_entries_to_webhook_outbox
    AFTER INSERT ON audit_entries
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_outbox_enqueue();
