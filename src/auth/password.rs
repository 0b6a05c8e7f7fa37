//! Password hashing with argon2id.
//!
//! Hashing costs ~20 MiB and tens of milliseconds of CPU on purpose, so it
//! never runs on the async workers: every hash and verify goes through
//! `spawn_blocking`, behind a semaphore sized to the cores, so a login storm
//! queues up instead of starving every other request of CPU and threads.
//!
//! A login for an unknown username (or an account whose password is unusable)
//! still verifies against [`dummy_hash`], so the answer takes as long as for a
//! real account and timing does not reveal which usernames exist.

use std::sync::{Arc, LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::PasswordPolicy;
use crate::domain::validation;
use crate::error::AppError;

/// OWASP's minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// One core is left to everything else: with every core hashing, a login
/// storm tripled the latency of the admin pages served beside it.
static HASHING_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)))
});

/// Makes glibc give each argon2 block buffer (19 MiB) back to the system
/// when it is freed. By default glibc raises its mmap threshold after the
/// first such buffer is freed, so later buffers come from the heap and stay
/// there: after a login storm the server kept 380–530 MiB it no longer used.
/// A fixed threshold keeps large buffers on mmap; the cost is page faults
/// on a buffer that is about to be written anyway. Call once, at startup.
pub fn return_hash_memory_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any hashing and M_MMAP_THRESHOLD takes a byte count.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// A hash of a random password with the same parameters as real hashes.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the OS random source works");
    hash_blocking(&SecretString::from(base64_of(&random)))
});

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_blocking(password: &SecretString) -> String {
    hasher()
        .hash_password(password.expose_secret().as_bytes())
        .expect("argon2 hashing with a generated salt cannot fail")
        .to_string()
}

async fn on_hashing_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let _slot = HASHING_SLOTS
        .clone()
        .acquire_owned()
        .await
        .map_err(AppError::internal)?;
    Ok(tokio::task::spawn_blocking(work).await?)
}

/// Hashes a password into an argon2id PHC string.
pub async fn hash_password(password: SecretString) -> Result<String, AppError> {
    on_hashing_pool(move || hash_blocking(&password)).await
}

/// Checks `password` against `stored` (a PHC string), or against the dummy hash
/// when there is none, so that both cases cost one argon2 verification.
/// The comparison inside `argon2` is constant-time.
pub async fn verify_password(
    password: SecretString,
    stored: Option<String>,
) -> Result<bool, AppError> {
    on_hashing_pool(move || {
        let (phc, real) = match &stored {
            Some(phc) => (phc.as_str(), true),
            None => (DUMMY_HASH.as_str(), false),
        };
        let matches = match hasher().verify_password(password.expose_secret().as_bytes(), phc) {
            Ok(()) => true,
            Err(argon2::password_hash::Error::PasswordInvalid) => false,
            Err(_) => {
                tracing::error!("a stored password hash is not a valid argon2 PHC string");
                false
            }
        };
        real && matches
    })
    .await
}

/// Judges a new password (`validation::password`) on the hashing pool:
/// zxcvbn is CPU work of the same order as a hash, so it gets the same
/// bound on parallelism and stays off the async workers.
pub async fn check_strength(
    field: &'static str,
    password: &SecretString,
    policy: &PasswordPolicy,
    user_inputs: &[&str],
) -> Result<(), AppError> {
    let password = password.clone();
    let policy = *policy;
    let inputs: Vec<String> = user_inputs.iter().map(|s| (*s).to_owned()).collect();
    on_hashing_pool(move || {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        validation::password(field, &password, &policy, &inputs)
    })
    .await?
}

/// Computes the dummy hash now, so the first login for an unknown user does
/// not pay for it (which would itself be a timing signal).
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| DUMMY_HASH.len()).await;
    // zxcvbn builds its dictionaries on first use (~0.2 s unoptimized).
    let _ = tokio::task::spawn_blocking(|| zxcvbn::zxcvbn("warm up", &[]).score()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let phc = hash_password(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            verify_password(
                SecretString::from("correct horse battery"),
                Some(phc.clone())
            )
            .await
            .unwrap()
        );
        assert!(
            !verify_password(SecretString::from("wrong"), Some(phc))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(SecretString::from("anything"), None)
                .await
                .unwrap()
        );
    }
}
