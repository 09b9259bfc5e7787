//! The harness itself: the default fixture starts and answers.

use crate::common::*;

#[test]
fn default_fixture_starts_all_three_plugins() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    rosey.wait_for_plugin("the hostile version", "hostile", |p| p["version"] == HOSTILE_VERSION);
}
