//! Secrets in the config (passwords, tokens): written inline, or named by an environment
//! variable (`password_env`) or a file (`password_file`, e.g. a systemd credential in
//! `$CREDENTIALS_DIRECTORY`). A [`Secret`] never prints its value: `Debug` and `Display` show
//! `***`, so it cannot leak through a log line, an error or an API answer.

use std::fmt;
use std::path::Path;

/// A value that must not be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret is written: at most one of the three. `Ok(None)` when none is.
/// Errors name the form used (`_env`, `_file`) and never the value.
pub(super) fn resolve(
    inline: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Secret>, (&'static str, String)> {
    match (inline, env, file) {
        (None, None, None) => Ok(None),
        (Some(value), None, None) if !value.is_empty() => Ok(Some(Secret::new(value))),
        (Some(_), None, None) => Err(("", "expected a non-empty value".to_owned())),
        (None, Some(var), None) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Some(Secret(value))),
            Ok(_) => Err(("_env", format!("the environment variable {var} is empty"))),
            Err(_) => Err(("_env", format!("the environment variable {var} is not set (or not UTF-8)"))),
        },
        (None, None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim_end_matches(['\n', '\r']).is_empty() => {
                Ok(Some(Secret(text.trim_end_matches(['\n', '\r']).to_owned())))
            }
            Ok(_) => Err(("_file", format!("the file {} is empty", path.display()))),
            Err(e) => Err(("_file", format!("cannot read {}: {e}", path.display()))),
        },
        _ => Err(("", "set only one of the value, _env (a variable name) and _file (a path)".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?} {:?}", Some(&secret)), "*** *** Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_secret_comes_from_one_place() {
        assert_eq!(resolve(None, None, None), Ok(None));
        assert_eq!(resolve(Some("pw"), None, None), Ok(Some(Secret::new("pw"))));
        assert!(resolve(Some("pw"), Some("X"), None).is_err());
        let missing = resolve(None, Some("ROSEY_TEST_SURELY_UNSET_VAR"), None).expect_err("unset");
        assert_eq!(missing.0, "_env");
        assert!(!missing.1.contains("pw"));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(resolve(None, None, Some(&path)), Ok(Some(Secret::new("s3cret"))));
    }
}
