//! `dashboard.users`: a viewer reads everything and is refused every action with a `403` that
//! says why; an operator acts, and the audit line names the user. `dashboard.auth` keeps
//! working as one more operator. The pages show the action buttons to operators only.

use serde_json::json;

use crate::common::pages::basic;
use crate::common::*;

#[test]
fn a_viewer_reads_and_is_refused_every_action_an_operator_acts_and_is_named_in_the_audit() {
    let viewer_hash = bcrypt::hash_with_result("view-pw", 4).unwrap().format_for_version(bcrypt::Version::TwoY);
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "admin-pw" });
    builder.config["dashboard"]["users"] = json!([
        { "username": "ann", "password_hash": viewer_hash, "role": "viewer" },
        { "username": "olga", "password": "op-pw", "role": "operator" },
    ]);
    let rosey = builder.start();
    let viewer = basic("ann", "view-pw");
    for path in ["/", "/plugin/dice-roller", "/api/metrics", "/api/plugin/dice-roller", "/metrics"] {
        let answer = request("GET", &rosey.url(path), &[("Authorization", &viewer)]).unwrap();
        assert_eq!(answer.status, 200, "a viewer reads {path}");
    }
    let actions = ["reload", "restart", "stop", "start"].map(|a| format!("/api/plugin/dice-roller/{a}"));
    for path in actions.iter().map(String::as_str).chain(["/api/reload"]) {
        let refused = request("POST", &rosey.url(path), &[("Authorization", &viewer)]).unwrap();
        assert_eq!(refused.status, 403, "a viewer's POST {path}");
        let error = refused.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("\"ann\" is a viewer") && error.contains("operator"), "{path}: {error}");
    }
    assert!(rosey.stderr_text().lines().all(|l| !l.contains("audit") || !l.contains("ann")), "nothing ran for ann");

    let operator = basic("olga", "op-pw");
    let done = request("POST", &rosey.url("/api/plugin/dice-roller/restart"), &[("Authorization", &operator)]).unwrap();
    assert_eq!(done.status, 200, "{}", done.body);
    let audit = wait_for("the audit line of olga's restart", DEADLINE, || {
        rosey.stderr_text().lines().find(|l| l.contains("audit") && l.contains("restart")).map(str::to_owned)
    });
    assert!(audit.contains("api user \"olga\""), "{audit}");

    let admin = basic("admin", "admin-pw");
    let done = request("POST", &rosey.url("/api/reload"), &[("Authorization", &admin)]).unwrap();
    assert_eq!(done.status, 200, "dashboard.auth is an operator: {}", done.body);
    let log = rosey.stderr_text();
    for secret in ["view-pw", "op-pw", "admin-pw"] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    assert!(log.contains("the password of \"olga\" is in plaintext"), "{log}");
}

#[test]
fn a_user_without_a_role_or_twice_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rosey.json");
    let written = json!({ "dashboard": {
        "auth": { "username": "ann", "password": "x" },
        "users": [{ "username": "ann", "password": "y", "role": "operator" }, { "username": "bob", "password": "z", "role": "admin" }],
    } });
    std::fs::write(&config, written.to_string()).unwrap();
    let output = run_rosey(dir.path(), &["--config", config.to_str().unwrap(), "config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("dashboard.users[1].role"), "{stderr}");
    assert!(stderr.contains("viewer") && stderr.contains("operator"), "{stderr}");
    let written = json!({ "dashboard": {
        "auth": { "username": "ann", "password": "x" },
        "users": [{ "username": "ann", "password": "y", "role": "operator" }],
    } });
    std::fs::write(&config, written.to_string()).unwrap();
    let stderr = stderr_of(&run_rosey(dir.path(), &["--config", config.to_str().unwrap(), "config"], &[]));
    assert!(stderr.contains("dashboard.users[0].username") && stderr.contains("given twice"), "{stderr}");
}

#[test]
fn the_pages_show_action_buttons_to_operators_only() {
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["users"] = json!([
        { "username": "ann", "password": "view-pw", "role": "viewer" },
        { "username": "olga", "password": "op-pw", "role": "operator" },
    ]);
    let rosey = builder.start();
    let page = |path: &str, login: &str| {
        let answer = request("GET", &rosey.url(path), &[("Authorization", login)]).unwrap();
        assert_eq!(answer.status, 200, "{path}");
        answer.body
    };
    let (viewer, operator) = (basic("ann", "view-pw"), basic("olga", "op-pw"));
    // Twice each, alternating: each role's page is rendered once and kept apart, never the
    // other's served from the shared bytes. The query exercises the per-query pages.
    for _ in 0..2 {
        for path in ["/", "/?state=down&view=table", "/plugin/dice-roller"] {
            let seen = page(path, &viewer);
            assert!(seen.contains("card-template") || seen.contains("data-plugin=\"dice-roller\""), "{path}: {seen}");
            for action in ["method=\"post\"", "data-action=", "card-actions"] {
                assert!(!seen.contains(action), "a viewer's {path} has {action}: {seen}");
            }
            let acting = page(path, &operator);
            assert!(
                acting.contains("method=\"post\"") && acting.contains("data-action=\"reload\""),
                "{path}: {acting}"
            );
        }
    }
}
