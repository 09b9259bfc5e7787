//! [`Checker`]: is a presented user name and password one of the configured users (and which)? A hashed password
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

use crate::config::{Password, Role, User};

/// How long a checked credential is taken without checking the hash again.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(60);
/// Credentials remembered at once; beyond it the expired ones go, then all.
const MAX_REMEMBERED: usize = 1024;

/// A credential's fingerprint: a keyed hash, useless without this process's key.
type Fingerprint = [u8; 64];

pub struct Checker {
    accounts: Vec<Arc<User>>,
    key: [u8; 64],
    /// Until when a fingerprint is taken, and for which account.
    remembered: Mutex<HashMap<Fingerprint, (Instant, usize)>>,
}

impl Checker {
    pub fn new(accounts: Vec<User>) -> Checker {
        let mut key = [0u8; 64];
        rand::fill(&mut key);
        Checker { accounts: accounts.into_iter().map(Arc::new).collect(), key, remembered: Mutex::new(HashMap::new()) }
    }

    /// The role of the user `username` if `password` is its password.
    pub async fn check(&self, username: &str, password: &str) -> Option<Role> {
        let (index, account) = self
            .accounts
            .iter()
            .enumerate()
            .find(|(_, a)| bool::from(username.as_bytes().ct_eq(a.login.username.as_bytes())))?;
        if let Password::Plain(_) = account.login.secret {
            return account.login.secret.verify(password).then_some(account.role);
        }
        let fingerprint = self.fingerprint(username, password);
        let now = Instant::now();
        if self.lock().get(&fingerprint).is_some_and(|(until, which)| *until > now && *which == index) {
            return Some(account.role);
        }
        let (checked, password) = (account.clone(), password.to_owned());
        let verified =
            tokio::task::spawn_blocking(move || checked.login.secret.verify(&password)).await.unwrap_or(false);
        if !verified {
            return None;
        }
        let mut remembered = self.lock();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, (until, _)| *until > now);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(fingerprint, (now + REMEMBERED_FOR, index));
        Some(account.role)
    }

    fn fingerprint(&self, username: &str, password: &str) -> Fingerprint {
        let mut mac = <Blake2bMac512 as KeyInit>::new_from_slice(&self.key).expect("64 bytes is BLAKE2b's largest key");
        // The length first, so that ("ab", "c") and ("a", "bc") differ.
        mac.update(&(username.len() as u64).to_le_bytes());
        mac.update(username.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, (Instant, usize)>> {
        self.remembered.lock().expect("the cache's lock is never held across a panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Login, hash_password};

    #[tokio::test]
    async fn a_hash_is_checked_once_then_remembered_without_the_password() {
        let hash = hash_password("correct horse").expect("hashed");
        let login = Login { username: "ops".into(), secret: Password::from_hash(&hash).expect("a hash") };
        let viewer = Login { username: "ann".into(), secret: Password::Plain("pw".into()) };
        let checker =
            Checker::new(vec![User { login, role: Role::Operator }, User { login: viewer, role: Role::Viewer }]);
        assert_eq!(checker.check("ops", "wrong").await, None);
        assert_eq!(checker.check("admin", "correct horse").await, None);
        assert_eq!(checker.check("ops", "pw").await, None, "another user's password");
        assert_eq!(checker.check("ann", "pw").await, Some(Role::Viewer));
        assert!(checker.lock().is_empty(), "failures and plaintext checks are not remembered");
        assert_eq!(checker.check("ops", "correct horse").await, Some(Role::Operator));
        assert_eq!(checker.check("ops", "correct horse").await, Some(Role::Operator));
        let remembered = checker.lock().keys().copied().collect::<Vec<_>>();
        assert_eq!(remembered, [checker.fingerprint("ops", "correct horse")]);
        assert_ne!(checker.fingerprint("ops", "correct horse"), checker.fingerprint("opsc", "orrect horse"));
    }
}
