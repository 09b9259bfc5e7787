//! [`Checker`]: is a presented user name and password the configured one? A hashed password
//! costs tens of milliseconds of CPU to check, by design, so the check runs on the blocking
//! pool, and a success is remembered for [`REMEMBERED_FOR`]: a page, its live stream and its
//! assets then pay it once. What is remembered is a keyed hash (BLAKE2b with a random key made
//! at start) of the presented credentials, never the password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::config::{Login, Secret};

/// How long a checked credential is taken without checking the hash again.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(60);
/// Credentials remembered at once; beyond it the expired ones go, then all.
const MAX_REMEMBERED: usize = 1024;

/// A credential's fingerprint: a keyed hash, useless without this process's key.
type Fingerprint = [u8; 64];

pub struct Checker {
    login: Arc<Login>,
    key: [u8; 64],
    remembered: Mutex<HashMap<Fingerprint, Instant>>,
}

impl Checker {
    pub fn new(login: Login) -> Checker {
        let mut key = [0u8; 64];
        rand::fill(&mut key);
        Checker { login: Arc::new(login), key, remembered: Mutex::new(HashMap::new()) }
    }

    /// Are `username` and `password` the configured ones?
    pub async fn check(&self, username: &str, password: &str) -> bool {
        let user_ok = bool::from(username.as_bytes().ct_eq(self.login.username.as_bytes()));
        if let Secret::Plain(_) = self.login.secret {
            return user_ok & self.login.secret.verify(password);
        }
        if !user_ok {
            return false;
        }
        let fingerprint = self.fingerprint(username, password);
        let now = Instant::now();
        if self.lock().get(&fingerprint).is_some_and(|until| *until > now) {
            return true;
        }
        let (login, password) = (self.login.clone(), password.to_owned());
        let verified = tokio::task::spawn_blocking(move || login.secret.verify(&password)).await.unwrap_or(false);
        if verified {
            let mut remembered = self.lock();
            if remembered.len() >= MAX_REMEMBERED {
                remembered.retain(|_, until| *until > now);
                if remembered.len() >= MAX_REMEMBERED {
                    remembered.clear();
                }
            }
            remembered.insert(fingerprint, now + REMEMBERED_FOR);
        }
        verified
    }

    fn fingerprint(&self, username: &str, password: &str) -> Fingerprint {
        let mut mac = <Blake2bMac512 as KeyInit>::new_from_slice(&self.key).expect("64 bytes is BLAKE2b's largest key");
        // The length first, so that ("ab", "c") and ("a", "bc") differ.
        mac.update(&(username.len() as u64).to_le_bytes());
        mac.update(username.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, Instant>> {
        self.remembered.lock().expect("the cache's lock is never held across a panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::hash_password;

    #[tokio::test]
    async fn a_hash_is_checked_once_then_remembered_without_the_password() {
        let hash = hash_password("correct horse").expect("hashed");
        let checker = Checker::new(Login { username: "ops".into(), secret: Secret::from_hash(&hash).expect("a hash") });
        assert!(!checker.check("ops", "wrong").await);
        assert!(!checker.check("admin", "correct horse").await);
        assert!(checker.lock().is_empty(), "failures are not remembered");
        assert!(checker.check("ops", "correct horse").await);
        assert!(checker.check("ops", "correct horse").await);
        let remembered = checker.lock().keys().copied().collect::<Vec<_>>();
        assert_eq!(remembered, [checker.fingerprint("ops", "correct horse")]);
        assert_ne!(checker.fingerprint("ops", "correct horse"), checker.fingerprint("opsc", "orrect horse"));
    }
}
