//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), made
//! by the spec's own `standardwebhooks` crate so that any receiver library
//! verifies them: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`,
//! the key the base64 part of the `whsec_…` secret, the header `v1,` and the
//! base64 HMAC-SHA256.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use standardwebhooks::Webhook;

/// The prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    getrandom::fill(&mut key).expect("the OS random source works");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The three headers of one signed request.
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

/// Signs `body` (UTF-8 JSON) as message `message_id` sent at `timestamp`
/// (Unix seconds). Fails only on a secret that is not base64, which
/// memberdesk never stores.
pub fn sign(
    secret: &str,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<SignedHeaders, standardwebhooks::WebhookError> {
    let signature = Webhook::new(secret)?.sign(message_id, timestamp, body)?;
    Ok(SignedHeaders {
        id: message_id.to_owned(),
        timestamp: timestamp.to_string(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_test_vector_is_reproduced() {
        let signed = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(
            signed.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(signed.timestamp, "1614265330");
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_decodable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let key = STANDARD
            .decode(a.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
    }
}
