//! A plugin's whole process tree belongs to the host: its memory and process count are the
//! tree's, and nothing of it outlives the host: not after SIGTERM, not a detached grandchild, and
//! not after the host is killed (the plugins notice their input closing and exit); a crashing
//! plugin takes its detached child with it.

use std::path::Path;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::json::metric;
use crate::common::pages::card_text;
use crate::common::*;

#[test]
fn memory_and_processes_count_the_whole_tree() {
    let rosey = RoseyBuilder::new().plugins(json!([python_plugin("tree", "memory_tree.py", &["80"])])).start();
    let p = rosey.wait_for_plugin("the tree's 80 MB", "tree", |p| {
        p["current"]["memory_mb"].as_f64() >= Some(80.0) && p["processes"].as_u64() >= Some(2)
    });
    let pid = p["pid"].as_u64().unwrap() as u32;
    assert!(!children_of(pid).is_empty(), "the plugin did start a child");

    let text = rosey.get("/metrics").body;
    assert!(metric(&text, r#"rosey_plugin_processes{plugin="tree"}"#) >= Some(2.0), "{text}");
    assert!(metric(&text, r#"rosey_plugin_memory_bytes{plugin="tree"}"#) >= Some(80.0 * 1024.0 * 1024.0));
    let metrics = rosey.get_json("/api/metrics");
    assert!(metrics["system"]["total_memory_mb"].as_f64() >= Some(80.0), "{}", metrics["system"]);
    let page = rosey.get("/").body;
    assert!(card_text(&page, "tree", "processes").parse::<u32>().unwrap() >= 2);
}

/// A plugin's pid and every process below it (for "nothing outlives the host").
fn tree_of(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let children = children_of(tree[next]);
        tree.extend(children);
        next += 1;
    }
    tree
}

/// A running bot with the default plugins and memory_tree.py (which starts a child of its own),
/// the hostile plugin past its hello, and the pids of every plugin process.
fn start_with_a_tree() -> (Rosey, Vec<u32>) {
    let rosey = RoseyBuilder::new().plugin(python_plugin("memory-tree", "memory_tree.py", &["10"])).start();
    rosey.wait_until_running();
    // Counted after the hello, as the SIGTERM test always did: counted before it, a loaded
    // machine once showed 9 processes instead of 5.
    rosey.wait_for_plugin("hostile's hello", "hostile", |p| p["version"] == HOSTILE_VERSION);
    let tree_root = rosey.pid_of("memory-tree") as u32;
    wait_for("memory_tree.py's child", DEADLINE, || (tree_of(tree_root).len() == 2).then_some(()));
    let mut pids = Vec::new();
    for name in ["dice-roller", "8ball", "hostile", "memory-tree"] {
        pids.extend(tree_of(rosey.pid_of(name) as u32));
    }
    (rosey, pids)
}

#[test]
fn sigterm_leaves_no_plugin_process_behind() {
    let (mut rosey, pids) = start_with_a_tree();
    assert_eq!(pids.len(), 5, "four plugins and memory_tree.py's child: {pids:?}");
    assert!(pids.iter().all(|&p| process_exists(p)));

    rosey.signal(Signal::SIGTERM);
    let status = rosey.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "a clean stop: {}", rosey.stderr_text());
    let survivors: Vec<u32> = pids.into_iter().filter(|&p| process_exists(p)).collect();
    assert!(survivors.is_empty(), "processes outlived the host: {survivors:?}");
    assert!(rosey.stderr_text().contains("stopped"), "the log says so");
}

/// The host cannot clean up after SIGKILL; its plugins notice their input closing and exit.
#[test]
fn plugins_exit_when_the_host_is_killed() {
    let (mut rosey, pids) = start_with_a_tree();
    rosey.signal(Signal::SIGKILL);
    rosey.wait_exit(DEADLINE);
    wait_for("every plugin process to exit", DEADLINE, || pids.iter().all(|&p| !process_exists(p)).then_some(()));
}

/// Kills a process at the end of a test, so that a failing run leaves nothing behind.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), Signal::SIGKILL);
    }
}

/// Wait for the PID a plugin wrote into `file`.
fn pid_written_to(file: &Path) -> u32 {
    wait_for("the detached process to write its pid", DEADLINE, || {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
}

/// Python that detaches a process the way daemons do (fork, `setsid()`, output to /dev/null),
/// which writes its PID to `pid_file` and sleeps. With `double_fork`, the middle process exits
/// at once, so the detached one loses its parent.
fn detach_source(pid_file: &Path, double_fork: bool) -> String {
    format!(
        r#"
import json, os, sys, time
def detached():
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with open({pid_file:?} + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename({pid_file:?} + ".tmp", {pid_file:?})
    time.sleep(300)
    os._exit(0)
if os.fork() == 0:
    if {double_fork}:
        if os.fork() == 0:
            detached()
        os._exit(0)
    detached()
print(json.dumps({{"type": "hello", "version": "1"}}), flush=True)
"#,
        pid_file = pid_file.display().to_string(),
        double_fork = if double_fork { "True" } else { "False" },
    )
}

/// A bot running dice-roller and a plugin "detacher" that detaches a process (see
/// [`detach_source`]) and then runs `rest` (Python); the detached PID, killed when dropped.
fn start_detacher(double_fork: bool, rest: &str) -> (Rosey, KillOnDrop, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pid_file = dir.path().join("detached.pid");
    let plugin = script_plugin(dir.path(), "detacher", &(detach_source(&pid_file, double_fork) + rest));
    let rosey =
        RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, plugin])).start();
    let detached = KillOnDrop(pid_written_to(&pid_file));
    assert!(process_exists(detached.0));
    (rosey, detached, dir)
}

#[test]
fn a_detached_grandchild_does_not_outlive_the_host() {
    let (mut rosey, detached, _dir) = start_detacher(true, "for line in sys.stdin:\n    pass\n");
    let grandchild = detached.0;

    rosey.signal(Signal::SIGTERM);
    assert_eq!(rosey.wait_exit(DEADLINE).code(), Some(0), "{}", rosey.stderr_text());
    assert!(!process_exists(grandchild), "the detached grandchild {grandchild} outlived the host");
}

#[test]
fn a_crashing_plugin_takes_its_detached_child_with_it() {
    // The plugin lives on for a while after detaching its child (the host records its tree
    // every second), then crashes; the child now belongs to no one but the host.
    let (rosey, detached, _dir) = start_detacher(false, "time.sleep(3)\nsys.exit(1)\n");
    let child = detached.0;
    rosey.wait_for_state("detacher", "FAILED");
    wait_for("the detached child to be killed with its plugin", DEADLINE, || (!process_exists(child)).then_some(()));
    assert_eq!(rosey.plugin("dice-roller")["state"], "RUNNING", "nothing else was hit");
}
