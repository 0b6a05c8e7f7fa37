//! Session tokens: 256 random bits, shown to the client once, stored only as
//! their SHA-256 digest. Looking a session up by digest means the database
//! never holds a usable token and no token comparison happens in our code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A freshly issued token: the secret for the client, the digest for the database.
pub struct IssuedToken {
    pub secret: SecretString,
    pub digest: Vec<u8>,
}

pub fn issue() -> IssuedToken {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let digest = digest(&secret);
    IssuedToken {
        secret: SecretString::from(secret),
        digest,
    }
}

pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl IssuedToken {
    pub fn reveal(&self) -> String {
        self.secret.expose_secret().to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let a = super::issue();
        let b = super::issue();
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.reveal().len(), 43);
        assert_eq!(a.digest, super::digest(&a.reveal()));
        assert_eq!(a.digest.len(), 32);
    }
}
