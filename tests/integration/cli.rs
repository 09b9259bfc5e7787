//! The command line: `--help` names the flags, variables and exit codes, `--version` says the
//! crate's version, and an unknown flag exits 2 with the usage.

use crate::common::{run_rosey, stderr_of, stdout_of};

#[test]
fn help_and_version_exit_0() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let help = run_rosey(dir.path(), &["--help"], &[]);
    assert!(help.status.success(), "{}", stderr_of(&help));
    let text = stdout_of(&help);
    for needle in ["--config", "ROSEY_CONFIG", "ROSEY_DASHBOARD__PORT", "ROSEY_LOG", "config", "Exit codes"] {
        assert!(text.contains(needle), "--help does not mention {needle}:\n{text}");
    }
    let version = run_rosey(dir.path(), &["--version"], &[]);
    assert!(version.status.success(), "{}", stderr_of(&version));
    assert_eq!(stdout_of(&version).trim(), format!("rosey {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn an_unknown_flag_exits_2_with_usage() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = run_rosey(dir.path(), &["--no-such-flag"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("--no-such-flag"), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("Usage:"), "{}", stderr_of(&output));
}
