//! `dashboard.tls`: HTTPS with a certificate from a test CA (made here with openssl), checked
//! by curl against that CA; `Strict-Transport-Security` on the answers; the certificate
//! replaced and SIGHUP: the new one served while an open live stream goes on; an unreadable
//! key at start is an error naming the key; at a config reload (SIGHUP or `POST /api/reload`)
//! it refuses the reload with the reason and the old certificate is kept, and once the files
//! are whole again a reload puts the renewed certificate in service.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::*;

/// Run openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA named `name` and a certificate it signed for 127.0.0.1: (ca.pem, cert.pem, key.pem).
pub fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let (cert, key, csr, ext) =
        (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    let subject = format!("/CN={name} test CA");
    openssl(
        dir,
        &[&["req", "-x509"][..], &ec, &["-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", &subject]].concat(),
    );
    openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(dir.join(&ext), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// `curl` trusting only `ca`: the status and headers of `path`, or None when the
/// certificate (or anything else) is refused.
fn curl(port: u16, path: &str, ca: &Path) -> Option<String> {
    let url = format!("https://127.0.0.1:{port}{path}");
    let output = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(&url)
        .output()
        .expect("curl runs");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A bot serving HTTPS with copies of `cert` and `key` (live.pem, live.key in `dir`).
pub fn spawn_with_tls(dir: &Path, cert: &Path, key: &Path) -> Rosey {
    with_tls(dir, cert, key).spawn()
}

/// The builder of [`spawn_with_tls`].
pub fn with_tls(dir: &Path, cert: &Path, key: &Path) -> RoseyBuilder {
    let live_cert = dir.join("live.pem");
    let live_key = dir.join("live.key");
    std::fs::copy(cert, &live_cert).unwrap();
    std::fs::copy(key, &live_key).unwrap();
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["tls"] = json!({ "cert": live_cert, "key": live_key });
    builder
}

/// A live stream over TLS read by curl: its lines arrive on the receiver.
fn stream(port: u16, ca: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new("curl")
        .args(["-sS", "-N", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}/events"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Wait for the next `event:` line of the stream.
fn next_event(rx: &mpsc::Receiver<String>) -> String {
    loop {
        let line = rx.recv_timeout(DEADLINE).expect("the stream goes on");
        if line.starts_with("event:") || line.starts_with("data:") {
            return line;
        }
    }
}

#[test]
fn https_is_verified_has_hsts_and_a_renewed_certificate_is_served_after_sighup_without_dropping_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, old_cert, old_key) = issue(dir.path(), "old");
    let (new_ca, new_cert, new_key) = issue(dir.path(), "new");
    let rosey = spawn_with_tls(dir.path(), &old_cert, &old_key);
    let port = rosey.port();
    let head = wait_for("the dashboard over TLS", DEADLINE, || {
        rosey.assert_alive();
        curl(port, "/api/metrics", &old_ca)
    });
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"), "{head}");
    assert!(curl(port, "/health", &new_ca).is_none(), "a client that trusts another CA refuses it");
    assert!(rosey.stderr_text().contains(&format!("dashboard: https://127.0.0.1:{port}")));

    let (mut live, events) = stream(port, &old_ca);
    next_event(&events);
    std::fs::copy(&new_cert, dir.path().join("live.pem")).unwrap();
    std::fs::copy(&new_key, dir.path().join("live.key")).unwrap();
    rosey.signal(Signal::SIGHUP);
    wait_for("the new certificate to be served", DEADLINE, || curl(port, "/health", &new_ca));
    assert!(curl(port, "/health", &old_ca).is_none(), "the old certificate is no longer served");
    next_event(&events);
    next_event(&events);
    assert!(live.try_wait().unwrap().is_none(), "the stream opened before the SIGHUP is still open");
    let _ = live.kill();
    let _ = live.wait();
}

#[test]
fn rosey_reload_over_https_verifies_the_certificate_with_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue(dir.path(), "reload");
    let (other_ca, _, _) = issue(dir.path(), "other");
    let mut builder = with_tls(dir.path(), &cert, &key);
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "s3cret" });
    let rosey = builder.spawn();
    let port = rosey.port();
    wait_for("the dashboard over TLS", DEADLINE, || curl(port, "/health", &ca));
    let config = rosey.config_path.to_str().unwrap().to_owned();
    let url = format!("https://127.0.0.1:{port}/");
    let reload = |ca_file: &Path| {
        run_rosey(
            dir.path(),
            &["--config", &config, "reload", "--url", &url, "--ca-file", ca_file.to_str().unwrap()],
            &[],
        )
    };
    let done = reload(&ca);
    assert!(done.status.success(), "{}", stderr_of(&done));
    assert!(stdout_of(&done).starts_with("config reloaded in "), "{}", stdout_of(&done));
    let refused = reload(&other_ca);
    assert_eq!(refused.status.code(), Some(1), "a certificate from another CA is refused");
    assert!(stderr_of(&refused).contains("cannot reach the bot"), "{}", stderr_of(&refused));
    let from_config = run_rosey(dir.path(), &["--config", &config, "reload", "--ca-file", ca.to_str().unwrap()], &[]);
    assert!(from_config.status.success(), "the config's dashboard.tls means https: {}", stderr_of(&from_config));
}

/// `curl` trusting only `ca`: POST `path` as `user:password`; the status and the body.
fn curl_post(port: u16, path: &str, ca: &Path, login: &str) -> (u16, String) {
    let url = format!("https://127.0.0.1:{port}{path}");
    let output = Command::new("curl")
        .args(["-sS", "-X", "POST", "--max-time", "30", "-w", "\n%{http_code}", "-u", login, "--cacert"])
        .arg(ca)
        .arg(&url)
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("the status follows the body");
    (status.parse().expect("an HTTP status"), body.to_owned())
}

#[test]
fn an_unreadable_key_is_an_error_at_start_and_refuses_a_config_reload_keeping_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue(dir.path(), "only");
    let (new_ca, new_cert, new_key) = issue(dir.path(), "renewed");
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["tls"] = json!({ "cert": cert, "key": dir.path().join("missing.key") });
    let mut refused = builder.spawn();
    let status = refused.wait_exit(DEADLINE);
    assert!(!status.success());
    let stderr = refused.stderr_text();
    assert!(stderr.contains("dashboard.tls.key") && stderr.contains("missing.key"), "{stderr}");

    let mut builder = with_tls(dir.path(), &cert, &key);
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "s3cret" });
    let rosey = builder.spawn();
    let port = rosey.port();
    wait_for("the dashboard over TLS", DEADLINE, || curl(port, "/health", &ca));
    // A renewal caught half-way: the new certificate is in place, its key is not.
    std::fs::copy(&new_cert, dir.path().join("live.pem")).unwrap();
    std::fs::remove_file(dir.path().join("live.key")).unwrap();
    rosey.signal(Signal::SIGHUP);
    let refusal = wait_for("the refused reload", DEADLINE, || {
        rosey.stderr_text().lines().find(|l| l.contains("config reload refused")).map(str::to_owned)
    });
    assert!(refusal.contains("dashboard.tls.key") && refusal.contains("live.key"), "{refusal}");
    assert!(refusal.contains("the certificate read before is still served"), "{refusal}");
    assert!(curl(port, "/health", &ca).is_some(), "the old certificate is still served");

    let (status, body) = curl_post(port, "/api/reload", &ca, "admin:s3cret");
    assert_eq!(status, 422, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let problems = answer["problems"].to_string();
    assert!(problems.contains("dashboard.tls.key") && problems.contains("still served"), "{body}");
    assert!(curl(port, "/health", &ca).is_some(), "the old certificate is still served");
    assert!(curl(port, "/health", &new_ca).is_none(), "the half-renewed files are not served");

    std::fs::copy(&new_key, dir.path().join("live.key")).unwrap();
    // Asked over a connection made with the old certificate; it answers once the new one is in.
    let (status, body) = curl_post(port, "/api/reload", &ca, "admin:s3cret");
    assert_eq!(status, 200, "the whole renewal is taken: {body}");
    assert!(curl(port, "/health", &new_ca).is_some(), "the renewed certificate is served");
}
