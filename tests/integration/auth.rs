//! HTTP basic auth (`dashboard.auth`): every route but `/health` is guarded, and the password
//! appears in no log and no `rosey config` output.

use std::time::Instant;

use serde_json::json;

use crate::common::pages::basic;
use crate::common::sse::Sse;
use crate::common::*;

#[test]
fn basic_auth_guards_everything_but_health() {
    let password = "s3cret-Pa55word";
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["auth"] = json!({ "username": "ops", "password": password });
    let rosey = builder.start();
    let right = basic("ops", password);
    let wrong = [basic("ops", "nope"), basic("admin", password), "Basic !!!".to_owned(), "Bearer x".to_owned()];

    let guarded = ["/", "/api/metrics", "/api/plugin/dice-roller", "/metrics", "/plugin/8ball", "/static/dashboard.js"];
    for path in guarded {
        let resp = rosey.get(path);
        assert_eq!(resp.status, 401, "{path} without credentials");
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Basic "), "{path}: {challenge:?}");
        for header in &wrong {
            let resp = request("GET", &rosey.url(path), &[("Authorization", header)]).unwrap();
            assert_eq!(resp.status, 401, "{path} with {header}");
        }
        let resp = request("GET", &rosey.url(path), &[("Authorization", &right)]).unwrap();
        assert_eq!(resp.status, 200, "{path} with the right credentials");
    }
    assert_eq!(rosey.get("/health").status, 200, "/health stays open for probes");
    assert_eq!(Sse::open(rosey.port(), "/events", &[]).status, 401);
    let mut sse = Sse::open(rosey.port(), "/events", &[("Authorization", &right)]);
    assert_eq!(sse.status, 200);
    sse.snapshot(Instant::now() + DEADLINE);

    assert!(!rosey.stderr_text().contains(password), "the password is in the log");
    let dir = rosey.config_path.parent().unwrap();
    let shown = run_rosey(dir, &["--config", rosey.config_path.to_str().unwrap(), "config"], &[]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(stdout.contains("\"ops\""), "the config is shown: {stdout}");
    assert!(!stdout.contains(password) && !String::from_utf8_lossy(&shown.stderr).contains(password));
}
