//! Password hashes in `dashboard.auth.password_hash`: argon2id as `rosey hash-password`
//! prints it, bcrypt as `htpasswd -B` writes it; a plaintext password still works, with a
//! warning that says how to hash it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::pages::basic;
use crate::common::*;

/// `rosey hash-password` with `password` on its standard input (no terminal: no prompt).
fn hash_password(password: &str) -> String {
    let mut child = Command::new(rosey_exe())
        .arg("hash-password")
        .env_remove("ROSEY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rosey starts");
    child.stdin.take().expect("piped").write_all(format!("{password}\n").as_bytes()).expect("written");
    let output = child.wait_with_output().expect("rosey ends");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(!stdout_of(&output).contains(password) && !stderr_of(&output).contains(password));
    stdout_of(&output).trim().to_owned()
}

fn guarded_by(hash: &str) -> Rosey {
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["auth"] = json!({ "username": "ops", "password_hash": hash });
    builder.start()
}

fn status(rosey: &Rosey, user: &str, password: &str) -> u16 {
    request("GET", &rosey.url("/api/metrics"), &[("Authorization", &basic(user, password))]).unwrap().status
}

#[test]
fn hash_password_output_logs_in_and_a_wrong_password_does_not() {
    let password = "correct horse battery staple";
    let hash = hash_password(password);
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let rosey = guarded_by(&hash);
    assert_eq!(status(&rosey, "ops", "correct horse battery stapl"), 401);
    assert_eq!(status(&rosey, "admin", password), 401);
    for _ in 0..3 {
        assert_eq!(status(&rosey, "ops", password), 200, "and again, from the cache");
    }
    let log = rosey.stderr_text();
    assert!(!log.contains(password) && !log.contains(&hash), "neither the password nor its hash is logged");
    assert!(!log.contains("plaintext"), "no plaintext warning with a hash: {log}");

    let dir = rosey.config_path.parent().unwrap();
    let shown = run_rosey(dir, &["--config", rosey.config_path.to_str().unwrap(), "config"], &[]);
    assert!(stdout_of(&shown).contains("\"password_hash\": \"<redacted>\""), "{}", stdout_of(&shown));
    assert!(!stdout_of(&shown).contains(&hash));
}

#[test]
fn a_bcrypt_hash_as_htpasswd_writes_it_logs_in() {
    let hash = bcrypt::hash_with_result("hunter2", 5).unwrap().format_for_version(bcrypt::Version::TwoY);
    let rosey = guarded_by(&hash);
    assert_eq!(status(&rosey, "ops", "hunter2"), 200);
    assert_eq!(status(&rosey, "ops", "hunter3"), 401);
}

#[test]
fn a_plaintext_password_works_with_a_warning_that_says_how_to_hash_it() {
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["auth"] = json!({ "username": "ops", "password": "plain-pw" });
    let rosey = builder.start();
    assert_eq!(status(&rosey, "ops", "plain-pw"), 200);
    let warning = wait_for("the plaintext warning", DEADLINE, || {
        rosey.stderr_text().lines().find(|l| l.contains("in plaintext")).map(str::to_owned)
    });
    assert!(warning.contains("rosey hash-password") && warning.contains("dashboard.auth.password_hash"), "{warning}");
    assert!(!warning.contains("plain-pw"));
}

#[test]
fn a_value_that_is_no_hash_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rosey.json");
    let written = json!({ "dashboard": { "auth": { "username": "ops", "password_hash": "hunter2" } } });
    std::fs::write(&config, written.to_string()).unwrap();
    let output = run_rosey(dir.path(), &["--config", config.to_str().unwrap(), "config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("dashboard.auth.password_hash") && stderr.contains("rosey hash-password"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the value is not echoed: {stderr}");
}
