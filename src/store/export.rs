//! Everything held about one user, as one JSON document built by PostgreSQL
//! (one statement, no row crosses into Rust one at a time). Never the
//! password hash or a session's token digest. Each section reads one table
//! that references users; `domain::export::SECTIONS` lists them, and a test
//! holds that list to PostgreSQL's catalog.

use sqlx::PgExecutor;

pub async fn user_data(
    ex: impl PgExecutor<'_>,
    user_id: i64,
) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
           'exportedAt', now(),
           'profile', jsonb_build_object(
               'id', u.id, 'username', u.username, 'email', u.email,
               'firstName', u.first_name, 'lastName', u.last_name,
               'isActive', u.is_active, 'isStaff', u.is_staff, 'isSuperuser', u.is_superuser,
               'dateJoined', u.date_joined, 'lastLogin', u.last_login,
               'deactivatedAt', u.deactivated_at, 'deactivationReason', u.deactivation_reason,
               'anonymizedAt', u.anonymized_at, 'erasureDueAt', u.erasure_due_at,
               'hasUsablePassword', u.password_hash IS NOT NULL),
           'groups', coalesce((
               SELECT jsonb_agg(g.name ORDER BY g.name)
                 FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE ug.user_id = u.id), '[]'),
           'permissions', coalesce((
               SELECT jsonb_agg(p.app_label || '.' || p.codename ORDER BY p.app_label, p.codename)
                 FROM user_permissions up JOIN permissions p ON p.id = up.permission_id
                WHERE up.user_id = u.id), '[]'),
           'votes', coalesce((
               SELECT jsonb_agg(jsonb_build_object('votedAt', v.created_at, 'question', q.text, 'choice', c.text)
                                ORDER BY v.id)
                 FROM votes v JOIN choices c ON c.id = v.choice_id JOIN questions q ON q.id = v.question_id
                WHERE v.user_id = u.id), '[]'),
           'questionsCreated', coalesce((
               SELECT jsonb_agg(jsonb_build_object('text', q.text, 'pubDate', q.pub_date) ORDER BY q.id)
                 FROM questions q WHERE q.created_by = u.id), '[]'),
           'deactivations', coalesce((
               SELECT jsonb_agg(jsonb_build_object('at', d.at, 'endedAt', d.ended_at,
                                                   'staffRevoked', d.staff_revoked) ORDER BY d.id)
                 FROM deactivations d WHERE d.user_id = u.id), '[]'),
           'sessions', coalesce((
               SELECT jsonb_agg(jsonb_build_object('createdAt', s.created_at, 'expiresAt', s.expires_at,
                                                   'revokedAt', s.revoked_at) ORDER BY s.id)
                 FROM sessions s WHERE s.user_id = u.id), '[]'),
           'auditEntries', coalesce((
               SELECT jsonb_agg(jsonb_build_object(
                          'at', a.at, 'action', a.action,
                          'role', CASE WHEN a.actor_ref = u.id THEN 'actor' ELSE 'target' END,
                          'actorUsername', a.actor_username, 'target', a.target_repr,
                          'reason', a.reason, 'details', a.details, 'redactedAt', a.redacted_at) ORDER BY a.id)
                 FROM audit_entries a WHERE a.actor_ref = u.id OR a.target_user_ref = u.id), '[]'))
         FROM users u WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(ex)
    .await
}
