//! Runtime settings, with the defaults a fresh install should have.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// The database memberdesk uses when `DATABASE_URL` is unset (user from the
/// environment, as libpq does).
pub const DEFAULT_DATABASE_URL: &str = "postgres://localhost/memberdesk";
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a session token from `login` stays valid.
    pub session_ttl: chrono::Duration,
    pub login_limit: LoginLimit,
    /// Largest request body accepted on `/graphql`.
    pub max_body_bytes: usize,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    /// How long a session may sit unused before it ends (besides `session_ttl`).
    pub session_idle: chrono::Duration,
    pub password_policy: PasswordPolicy,
    /// Peers whose `X-Forwarded-For` names the client (load balancers, proxies).
    pub trusted_proxies: TrustedProxies,
    /// Bounds on a document, checked before async-graphql validates it.
    pub document_limits: DocumentLimits,
    pub connections: ConnectionLimits,
    /// The GraphiQL page at `/` and at `/graphql` for a browser.
    pub playground: Switch,
    /// `__schema` and `__type` queries (`export-schema` works either way).
    pub introspection: Switch,
    /// Where `/metrics` is served instead of the main listener (an internal
    /// address); `None`: on the main listener.
    pub metrics_bind: Option<String>,
    /// How long a requested erasure waits before `run-erasures` carries it
    /// out (zero: at once, in the request itself).
    pub erasure_grace: chrono::Duration,
    /// Whether deletions, anonymizations and deactivations must say why.
    pub reason_policy: ReasonPolicy,
    /// What a SCIM `DELETE /Users/{id}` does (`MEMBERDESK_SCIM_DELETE`).
    pub scim_delete: ScimDelete,
    /// Where webhooks may point, and how their deliveries are paced.
    pub webhooks: WebhookSettings,
}

/// The webhook endpoints memberdesk may call and how it retries them (see
/// `crate::webhooks`). Only the two address rules come from the
/// environment; the pacing is fixed in production and shortened by tests.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// `http://` endpoints besides `https://` (`MEMBERDESK_WEBHOOK_ALLOW_HTTP`).
    pub allow_http: Switch,
    /// Loopback, private and link-local addresses
    /// (`MEMBERDESK_WEBHOOK_ALLOW_PRIVATE`): off, an endpoint cannot make
    /// memberdesk call into its own network.
    pub allow_private: Switch,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval: Duration,
    /// The wait after a first failed attempt; it doubles with each failure.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub max_retry: Duration,
    /// The most one attempt may take, connecting included.
    pub attempt_timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_http: Switch::Off,
            allow_private: Switch::Off,
            poll_interval: Duration::from_secs(1),
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether an operation that removes access or data must give a `reason`
/// (`MEMBERDESK_REQUIRE_REASON`): some organisations want every such change
/// explained in the audit log, others would only get "x" typed into the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasonPolicy {
    /// A reason is kept when given (the default).
    #[default]
    Optional,
    /// Deletes, anonymizations and deactivations without one are refused
    /// (`INVALID_INPUT`, field `reason`); previews (`dryRun`) need none.
    Required,
}

/// What a SCIM `DELETE /Users/{id}` does (`MEMBERDESK_SCIM_DELETE`): never a
/// hard delete, whose cascade an identity provider cannot see or undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScimDelete {
    /// The default: `deactivateUser`, reversible.
    #[default]
    Deactivate,
    /// `anonymizeUser` (the token needs `auth.delete_user`): for
    /// organisations whose leavers must be erased, not kept.
    Anonymize,
}

impl ScimDelete {
    pub fn parse(name: &str, value: &str) -> Result<ScimDelete, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "deactivate" => Ok(ScimDelete::Deactivate),
            "anonymize" => Ok(ScimDelete::Anonymize),
            _ => Err(format!(
                "{name} must be 'deactivate' or 'anonymize', not '{value}'"
            )),
        }
    }
}

/// A feature a production deployment may turn off (`on` or `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }

    /// `on`/`off` (also `true`/`false`, `1`/`0`), case-insensitive; an
    /// error names the variable. Unset or blank: `default`.
    fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        name: &str,
        default: Switch,
    ) -> Result<Switch, String> {
        let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(Switch::On),
            "off" | "false" | "0" => Ok(Switch::Off),
            _ => Err(format!("{name} must be 'on' or 'off', not '{value}'")),
        }
    }
}

/// What one GraphQL document may hold, counted with every fragment spread
/// expanded (see `graphql::limits`).
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    /// Field selections, `__typename` included.
    pub max_selections: u64,
    /// Fragment definitions.
    pub max_fragments: u64,
    /// Aliased fields.
    pub max_aliases: u64,
    /// Root fields of a mutation operation.
    pub max_mutations: u64,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        DocumentLimits {
            max_selections: 2_000,
            max_fragments: 50,
            max_aliases: 100,
            max_mutations: 10,
        }
    }
}

/// What a new password must meet besides zxcvbn's score (see `validation::password`).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) a new password may have.
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 12 }
    }
}

/// The addresses and networks of the proxies in front of memberdesk; empty:
/// every peer is the client itself.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// Comma-separated addresses (`10.0.0.7`, `::1`) and CIDR ranges
    /// (`10.0.0.0/8`); an error names the variable and the bad entry.
    pub fn parse(name: &str, value: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!("{name} must list IP addresses or CIDR ranges (like 10.0.0.0/8), not '{entry}'")
                })?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

/// Failed logins allowed within `window`: per username from one client
/// address (the guesser's budget), per client address over all usernames
/// (a spray), and per username over all addresses (distributed guessing;
/// higher, as reaching it locks the owner out too).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimit {
    pub per_username: i32,
    pub per_username_and_address: i32,
    pub per_address: i32,
    pub window: Duration,
}

/// How long the HTTP server waits on a client, and how many it serves at
/// once, so that slow or stalled clients cannot hold every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From a request's first byte (or the connection's opening) to the end
    /// of its headers.
    pub header_timeout: Duration,
    /// From the end of a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// How long a connection may sit idle between two requests.
    pub keep_alive_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            // Longer than the 60 s idle timeout of common load balancers, so
            // they, not memberdesk, close idle connections (no reset races).
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 512,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_ttl: chrono::Duration::hours(12),
            login_limit: LoginLimit {
                per_username: 100,
                per_username_and_address: 5,
                per_address: 50,
                window: Duration::from_secs(15 * 60),
            },
            max_body_bytes: 256 * 1024,
            max_query_depth: 16,
            max_query_complexity: 50_000,
            session_idle: chrono::Duration::minutes(60),
            password_policy: PasswordPolicy::default(),
            trusted_proxies: TrustedProxies::default(),
            document_limits: DocumentLimits::default(),
            connections: ConnectionLimits::default(),
            playground: Switch::On,
            introspection: Switch::On,
            metrics_bind: None,
            erasure_grace: chrono::Duration::days(7),
            reason_policy: ReasonPolicy::Optional,
            scim_delete: ScimDelete::Deactivate,
            webhooks: WebhookSettings::default(),
        }
    }
}

impl Settings {
    /// The defaults, overridden by whichever `MEMBERDESK_*` variables of the
    /// README's configuration table are set. A value that is not a positive
    /// whole number is an error naming the variable.
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let number = |name: &str| whole_number(&lookup, name, 1);
        let mut s = Settings::default();
        if let Some(n) = number("MEMBERDESK_SESSION_TTL_MINUTES")? {
            s.session_ttl = chrono::Duration::minutes(n as i64);
        }
        if let Some(n) = number("MEMBERDESK_LOGIN_LIMIT_PER_USERNAME")? {
            s.login_limit.per_username = n as i32;
        }
        if let Some(n) = number("MEMBERDESK_LOGIN_LIMIT_PER_USERNAME_AND_ADDRESS")? {
            s.login_limit.per_username_and_address = n as i32;
        }
        if let Some(n) = number("MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS")? {
            s.login_limit.per_address = n as i32;
        }
        if let Some(n) = number("MEMBERDESK_LOGIN_WINDOW_SECONDS")? {
            s.login_limit.window = Duration::from_secs(n);
        }
        if let Some(n) = number("MEMBERDESK_MAX_BODY_BYTES")? {
            s.max_body_bytes = n as usize;
        }
        if let Some(n) = number("MEMBERDESK_MAX_QUERY_DEPTH")? {
            s.max_query_depth = n as usize;
        }
        if let Some(n) = number("MEMBERDESK_MAX_QUERY_COMPLEXITY")? {
            s.max_query_complexity = n as usize;
        }
        if let Some(n) = number("MEMBERDESK_SESSION_IDLE_MINUTES")? {
            s.session_idle = chrono::Duration::minutes(n as i64);
        }
        if let Some(n) = number("MEMBERDESK_PASSWORD_MIN_LENGTH")? {
            s.password_policy.min_length = n as usize;
        }
        if let Some(v) = lookup("MEMBERDESK_TRUSTED_PROXIES") {
            s.trusted_proxies = TrustedProxies::parse("MEMBERDESK_TRUSTED_PROXIES", &v)?;
        }
        let limits = &mut s.document_limits;
        for (name, value) in [
            ("MEMBERDESK_MAX_SELECTIONS", &mut limits.max_selections),
            ("MEMBERDESK_MAX_FRAGMENTS", &mut limits.max_fragments),
            ("MEMBERDESK_MAX_ALIASES", &mut limits.max_aliases),
            (
                "MEMBERDESK_MAX_MUTATIONS_PER_REQUEST",
                &mut limits.max_mutations,
            ),
        ] {
            if let Some(n) = number(name)? {
                *value = n;
            }
        }
        s.erasure_grace = erasure_grace(&lookup)?;
        s.connections = ConnectionLimits::from_lookup(&lookup)?;
        s.read_deployment_choices(&lookup)?;
        Ok(s)
    }

    /// What a deployment turns on or off (the playground, introspection,
    /// required reasons) and where it serves `/metrics`.
    fn read_deployment_choices(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        self.playground = Switch::from_lookup(lookup, "MEMBERDESK_PLAYGROUND", Switch::On)?;
        self.introspection = Switch::from_lookup(lookup, "MEMBERDESK_INTROSPECTION", Switch::On)?;
        self.metrics_bind = lookup("MEMBERDESK_METRICS_BIND")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        self.reason_policy =
            match Switch::from_lookup(lookup, "MEMBERDESK_REQUIRE_REASON", Switch::Off)? {
                Switch::On => ReasonPolicy::Required,
                Switch::Off => ReasonPolicy::Optional,
            };
        if let Some(value) = lookup("MEMBERDESK_SCIM_DELETE") {
            self.scim_delete = ScimDelete::parse("MEMBERDESK_SCIM_DELETE", &value)?;
        }
        self.webhooks.allow_http =
            Switch::from_lookup(lookup, "MEMBERDESK_WEBHOOK_ALLOW_HTTP", Switch::Off)?;
        self.webhooks.allow_private =
            Switch::from_lookup(lookup, "MEMBERDESK_WEBHOOK_ALLOW_PRIVATE", Switch::Off)?;
        Ok(())
    }
}

impl ConnectionLimits {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let seconds =
            |name: &str| Ok::<_, String>(whole_number(lookup, name, 1)?.map(Duration::from_secs));
        let mut limits = ConnectionLimits::default();
        if let Some(t) = seconds("MEMBERDESK_HEADER_TIMEOUT_SECONDS")? {
            limits.header_timeout = t;
        }
        if let Some(t) = seconds("MEMBERDESK_BODY_TIMEOUT_SECONDS")? {
            limits.body_timeout = t;
        }
        if let Some(t) = seconds("MEMBERDESK_KEEP_ALIVE_SECONDS")? {
            limits.keep_alive_timeout = t;
        }
        if let Some(n) = whole_number(lookup, "MEMBERDESK_MAX_CONNECTIONS", 1)? {
            limits.max_connections = n as usize;
        }
        Ok(limits)
    }
}

/// `MEMBERDESK_ERASURE_GRACE_DAYS`: whole days, 0 (at once) allowed.
fn erasure_grace(lookup: &impl Fn(&str) -> Option<String>) -> Result<chrono::Duration, String> {
    let days = whole_number(lookup, "MEMBERDESK_ERASURE_GRACE_DAYS", 0)?;
    Ok(days.map_or(Settings::default().erasure_grace, |d| {
        chrono::Duration::days(d as i64)
    }))
}

/// A whole-number setting from `lookup`: `None` when unset or blank; an error
/// naming the variable when it is not a whole number from `min` up.
pub fn whole_number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    min: u64,
) -> Result<Option<u64>, String> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= min && n <= i32::MAX as u64 => Ok(Some(n)),
            _ if min == 1 => Err(format!("{name} must be a positive whole number, not '{v}'")),
            _ => Err(format!(
                "{name} must be a whole number from {min}, not '{v}'"
            )),
        },
    }
}

/// `DATABASE_URL` as set, or the default when it is unset. A value that is
/// set but empty is returned as it is, for `db::connect` to refuse: falling
/// back to the default would silently use another database than meant.
pub fn database_url() -> String {
    match std::env::var_os("DATABASE_URL") {
        Some(url) => url.to_string_lossy().into_owned(),
        None => {
            // libpq takes the user from the environment; a shell without
            // one (cron, containers) would otherwise log in as "anonymous".
            let has_user = ["PGUSER", "USER"]
                .iter()
                .any(|v| std::env::var(v).is_ok_and(|u| !u.is_empty()));
            if has_user {
                DEFAULT_DATABASE_URL.to_owned()
            } else {
                "postgres://postgres@localhost/memberdesk".to_owned()
            }
        }
    }
}

/// Every `MEMBERDESK_*` environment variable memberdesk (or its test suite)
/// reads: the names of README's configuration table, which a test keeps
/// equal to this list. A variable not in it is a typo or a leftover, warned
/// about at startup by [`unknown_variables`].
pub const KNOWN_VARIABLES: &[&str] = &[
    "MEMBERDESK_BIND",
    "MEMBERDESK_LOG_FORMAT",
    "MEMBERDESK_LOG",
    "MEMBERDESK_DB_POOL_SIZE",
    "MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS",
    "MEMBERDESK_STATEMENT_TIMEOUT_SECONDS",
    "MEMBERDESK_SESSION_TTL_MINUTES",
    "MEMBERDESK_LOGIN_LIMIT_PER_USERNAME",
    "MEMBERDESK_LOGIN_LIMIT_PER_USERNAME_AND_ADDRESS",
    "MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS",
    "MEMBERDESK_LOGIN_WINDOW_SECONDS",
    "MEMBERDESK_TRUSTED_PROXIES",
    "MEMBERDESK_SESSION_IDLE_MINUTES",
    "MEMBERDESK_PASSWORD_MIN_LENGTH",
    "MEMBERDESK_MAX_BODY_BYTES",
    "MEMBERDESK_MAX_QUERY_DEPTH",
    "MEMBERDESK_MAX_QUERY_COMPLEXITY",
    "MEMBERDESK_MAX_SELECTIONS",
    "MEMBERDESK_MAX_FRAGMENTS",
    "MEMBERDESK_MAX_ALIASES",
    "MEMBERDESK_MAX_MUTATIONS_PER_REQUEST",
    "MEMBERDESK_HEADER_TIMEOUT_SECONDS",
    "MEMBERDESK_BODY_TIMEOUT_SECONDS",
    "MEMBERDESK_KEEP_ALIVE_SECONDS",
    "MEMBERDESK_MAX_CONNECTIONS",
    "MEMBERDESK_PLAYGROUND",
    "MEMBERDESK_INTROSPECTION",
    "MEMBERDESK_METRICS_BIND",
    "MEMBERDESK_ERASURE_GRACE_DAYS",
    "MEMBERDESK_REQUIRE_REASON",
    "MEMBERDESK_SCIM_DELETE",
    "MEMBERDESK_PASSWORD",
    "MEMBERDESK_TEST_DATABASE_URL",
    "MEMBERDESK_WEBHOOK_ALLOW_HTTP",
    "MEMBERDESK_WEBHOOK_ALLOW_PRIVATE",
];

/// One warning line for each `MEMBERDESK_*` name among `names` that
/// memberdesk does not know, naming the known one closest to it.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with("MEMBERDESK_") && !KNOWN_VARIABLES.contains(&name.as_str()))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| {
            let closest = KNOWN_VARIABLES
                .iter()
                .min_by_key(|known| edit_distance(&name, known))
                .expect("the list is not empty");
            format!("{name} is not a memberdesk setting and is ignored: did you mean {closest}?")
        })
        .collect()
}

/// Levenshtein distance: the fewest one-character insertions, deletions and
/// substitutions turning `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults_and_bad_values_are_named() {
        let s = Settings::from_lookup(|name| {
            (name == "MEMBERDESK_SESSION_TTL_MINUTES").then(|| "30".into())
        })
        .unwrap();
        assert_eq!(s.session_ttl, chrono::Duration::minutes(30));
        assert_eq!(s.erasure_grace, chrono::Duration::days(7));
        let at_once = Settings::from_lookup(|name| {
            (name == "MEMBERDESK_ERASURE_GRACE_DAYS").then(|| "0".into())
        })
        .unwrap();
        assert_eq!(at_once.erasure_grace, chrono::Duration::zero());
        assert_eq!(s.max_query_depth, Settings::default().max_query_depth);
        let err = Settings::from_lookup(|name| {
            (name == "MEMBERDESK_MAX_BODY_BYTES").then(|| "-1".into())
        })
        .unwrap_err();
        assert!(err.contains("MEMBERDESK_MAX_BODY_BYTES"), "{err}");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges_and_name_a_bad_entry() {
        let s = Settings::from_lookup(|name| {
            (name == "MEMBERDESK_TRUSTED_PROXIES").then(|| " 10.0.0.0/8, ::1 ,192.0.2.7".into())
        })
        .unwrap();
        let trusted = |a: &str| s.trusted_proxies.contains(a.parse().unwrap());
        assert!(trusted("10.1.2.3") && trusted("::1") && trusted("192.0.2.7"));
        assert!(
            trusted("::ffff:10.0.0.1"),
            "IPv4-mapped peers count as IPv4"
        );
        assert!(!trusted("192.0.2.8") && !trusted("127.0.0.1"));
        assert!(Settings::default().trusted_proxies.0.is_empty());
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0.1,,nope"] {
            let err = Settings::from_lookup(|name| {
                (name == "MEMBERDESK_TRUSTED_PROXIES").then(|| bad.into())
            })
            .unwrap_err();
            assert!(err.contains("MEMBERDESK_TRUSTED_PROXIES"), "{err}");
        }
    }

    #[test]
    fn connection_limits_come_from_the_environment() {
        let s = Settings::from_lookup(|name| match name {
            "MEMBERDESK_HEADER_TIMEOUT_SECONDS" => Some("3".into()),
            "MEMBERDESK_MAX_CONNECTIONS" => Some("7".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.connections.header_timeout, Duration::from_secs(3));
        assert_eq!(s.connections.max_connections, 7);
        assert_eq!(s.connections.body_timeout, Duration::from_secs(30));
        for name in [
            "MEMBERDESK_BODY_TIMEOUT_SECONDS",
            "MEMBERDESK_KEEP_ALIVE_SECONDS",
            "MEMBERDESK_MAX_CONNECTIONS",
        ] {
            let err = Settings::from_lookup(|n| (n == name).then(|| "0".into())).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn production_switches_come_from_the_environment() {
        let s = Settings::from_lookup(|name| match name {
            "MEMBERDESK_PLAYGROUND" => Some("off".into()),
            "MEMBERDESK_INTROSPECTION" => Some(" OFF ".into()),
            "MEMBERDESK_METRICS_BIND" => Some("127.0.0.1:9100".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.playground, Switch::Off);
        assert_eq!(s.introspection, Switch::Off);
        assert_eq!(s.metrics_bind.as_deref(), Some("127.0.0.1:9100"));
        let d = Settings::from_lookup(|_| None).unwrap();
        assert!(d.playground.is_on() && d.introspection.is_on() && d.metrics_bind.is_none());
        let err = Settings::from_lookup(|n| (n == "MEMBERDESK_PLAYGROUND").then(|| "no".into()))
            .unwrap_err();
        assert_eq!(err, "MEMBERDESK_PLAYGROUND must be 'on' or 'off', not 'no'");
    }

    #[test]
    fn reasons_are_required_only_when_asked_for() {
        let with = |value: &'static str| {
            Settings::from_lookup(move |n| (n == "MEMBERDESK_REQUIRE_REASON").then(|| value.into()))
        };
        assert_eq!(Settings::default().reason_policy, ReasonPolicy::Optional);
        for on in ["true", "on", "1", " TRUE "] {
            assert_eq!(
                with(on).unwrap().reason_policy,
                ReasonPolicy::Required,
                "{on}"
            );
        }
        for off in ["false", "off", "0", ""] {
            assert_eq!(
                with(off).unwrap().reason_policy,
                ReasonPolicy::Optional,
                "{off}"
            );
        }
        let err = with("yes please").unwrap_err();
        assert!(err.contains("MEMBERDESK_REQUIRE_REASON"), "{err}");
    }

    #[test]
    fn unknown_variables_name_the_closest_known_one() {
        let seen = [
            "MEMBERDESK_LOGLEVEL",
            "MEMBERDESK_LOG",
            "MEMBERDESK_SESION_TTL_MINUTES",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            unknown_variables(seen),
            [
                "MEMBERDESK_LOGLEVEL is not a memberdesk setting and is ignored: did you mean MEMBERDESK_LOG?",
                "MEMBERDESK_SESION_TTL_MINUTES is not a memberdesk setting and is ignored: did you mean MEMBERDESK_SESSION_TTL_MINUTES?",
            ]
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// The list of known variables and README's configuration table name the
    /// same `MEMBERDESK_*` variables, so neither can drift from the other.
    #[test]
    fn known_variables_are_the_readme_configuration_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let table = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has a Configuration section");
        let mut documented: Vec<&str> = table
            .lines()
            .filter(|line| line.starts_with('|'))
            .flat_map(|line| line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            .filter(|word| word.starts_with("MEMBERDESK_") && word.len() > "MEMBERDESK_".len())
            .collect();
        documented.sort_unstable();
        documented.dedup();
        let mut known = KNOWN_VARIABLES.to_vec();
        known.sort_unstable();
        assert_eq!(
            documented, known,
            "README's configuration table vs KNOWN_VARIABLES"
        );
    }
}
