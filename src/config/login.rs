//! [`Login`]: the dashboard's credentials as the config gives them, and [`Password`], the
//! password they are checked against: the plaintext, or a hash (argon2 in the PHC string
//! format, as `rosey hash-password` and the `argon2` crate write it; bcrypt as `htpasswd -B`
//! writes it). `Debug` never shows either.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordVerifier};

/// A user name and the secret its password is checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub secret: Password,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Plain(String),
    /// A PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash`, checked to parse.
    Argon2(String),
    /// `$2b$`, `$2a$` or `$2y$` with its cost, salt and hash, checked to parse.
    Bcrypt(String),
}

impl Password {
    /// A hash as written in `password_hash`, or why it is none that can be checked.
    pub fn from_hash(text: &str) -> Result<Password, String> {
        let text = text.trim();
        if text.starts_with("$2") {
            return match text.parse::<bcrypt::HashParts>() {
                Ok(_) => Ok(Password::Bcrypt(text.to_owned())),
                Err(e) => Err(format!("expected a bcrypt hash such as htpasswd -B writes, but it does not parse: {e}")),
            };
        }
        match PasswordHash::new(text) {
            Ok(hash) if hash.algorithm.as_str().starts_with("argon2") && hash.hash.is_some() => {
                Ok(Password::Argon2(text.to_owned()))
            }
            Ok(hash) => Err(format!(
                "expected an argon2 or bcrypt hash (as `rosey hash-password` prints), found a {} hash",
                hash.algorithm
            )),
            Err(_) => Err("expected a password hash as `rosey hash-password` prints (argon2id, $argon2id$…) or \
                           as htpasswd -B writes (bcrypt, $2y$…)"
                .to_owned()),
        }
    }

    /// Is `password` the one this secret stands for? With a hash this costs tens of
    /// milliseconds of CPU by design: call it off the async runtime.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Password::Plain(plain) => {
                use subtle::ConstantTimeEq;
                bool::from(password.as_bytes().ct_eq(plain.as_bytes()))
            }
            Password::Argon2(phc) => PasswordHash::new(phc)
                .is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()),
            Password::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        }
    }

    /// Is this the plaintext itself?
    pub fn is_plain(&self) -> bool {
        matches!(self, Password::Plain(_))
    }
}

/// A new argon2id hash of `password` in the PHC string format, with a random salt and the
/// `argon2` crate's default cost (OWASP's recommendation: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Password::Plain(_) => "Plain(<redacted>)",
            Password::Argon2(_) => "Argon2(<redacted>)",
            Password::Bcrypt(_) => "Bcrypt(<redacted>)",
        })
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login").field("username", &self.username).field("secret", &self.secret).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_and_bcrypt_hashes_check_the_password() {
        let argon = Password::from_hash(&hash_password("correct horse").expect("hashed")).expect("an argon2 hash");
        assert!(matches!(argon, Password::Argon2(_)));
        assert!(argon.verify("correct horse"));
        assert!(!argon.verify("correct horse "));
        let bcrypt =
            bcrypt::hash_with_result("correct horse", 4).expect("hashed").format_for_version(bcrypt::Version::TwoY);
        let bcrypt = Password::from_hash(&bcrypt).expect("a bcrypt hash");
        assert!(bcrypt.verify("correct horse"));
        assert!(!bcrypt.verify("Correct horse"));
        assert!(Password::Plain("x".into()).verify("x") && !Password::Plain("x".into()).verify("y"));
    }

    #[test]
    fn what_is_no_usable_hash_is_refused_in_words() {
        for text in ["hunter2", "$2y$05$short", "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA", ""] {
            let error = Password::from_hash(text).expect_err(text);
            assert!(error.contains("hash"), "{text}: {error}");
        }
        assert_eq!(format!("{:?}", Password::Plain("hunter2".into())), "Plain(<redacted>)");
    }
}
