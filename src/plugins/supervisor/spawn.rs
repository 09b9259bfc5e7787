//! Building a plugin's command line and explaining why it could not be started.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::limits;
use crate::plugins::Launcher;
use crate::plugins::spec::{Launch, PluginConfig};

/// Why a plugin process could not be started; each names what is missing.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("working directory {dir:?} does not exist")]
    MissingDirectory { dir: PathBuf },
    #[error("working directory {dir:?} is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("program {program:?} not found")]
    MissingProgram { program: PathBuf },
    #[error("program {program:?} not found in PATH")]
    NotInPath { program: PathBuf },
    #[error("program {program:?} exists but cannot be run: its #! interpreter or a library it needs is missing")]
    MissingInterpreter { program: PathBuf },
    #[error("cannot run program {program:?}: {source}")]
    Other { program: PathBuf, source: std::io::Error },
}

impl SpawnError {
    /// Tell apart the causes the OS reports all as "No such file or directory".
    pub(super) fn explain(program: &Path, cwd: Option<&Path>, source: std::io::Error) -> SpawnError {
        if let Some(dir) = cwd {
            match std::fs::metadata(dir) {
                Err(_) => return SpawnError::MissingDirectory { dir: dir.to_owned() },
                Ok(meta) if !meta.is_dir() => return SpawnError::NotADirectory { dir: dir.to_owned() },
                Ok(_) => {}
            }
        }
        if source.kind() != std::io::ErrorKind::NotFound {
            return SpawnError::Other { program: program.to_owned(), source };
        }
        let program = program.to_owned();
        if program.components().count() == 1 && program.is_relative() {
            return SpawnError::NotInPath { program };
        }
        // A relative path with a slash is looked up from the plugin's working directory.
        let resolved = cwd.map_or_else(|| program.clone(), |dir| dir.join(&program));
        if resolved.exists() {
            SpawnError::MissingInterpreter { program }
        } else {
            SpawnError::MissingProgram { program }
        }
    }
}

pub(super) fn command_for(config: &PluginConfig, launcher: &Launcher) -> (Command, PathBuf) {
    let (program, mut cmd) = match &config.launch {
        Launch::Builtin(builtin) => {
            let mut cmd = Command::new(&launcher.rosey_exe);
            cmd.arg("plugin").arg(builtin.name());
            (launcher.rosey_exe.clone(), cmd)
        }
        Launch::Command { program, args } => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            (PathBuf::from(program), cmd)
        }
    };
    cmd.envs(&config.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: the host signals the plugin and everything it started at once,
        // and a Ctrl-C in the host's terminal reaches only the host, which then stops plugins in order.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &config.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(inherited) = launcher.open_files {
        limits::restore_in_child(&mut cmd, inherited);
    }
    (cmd, program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_name_what_is_missing() {
        let enoent = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().to_owned();
        let missing_dir = dir.join("nope");
        let error = SpawnError::explain(Path::new("python3"), Some(&missing_dir), enoent());
        assert_eq!(error.to_string(), format!("working directory {missing_dir:?} does not exist"));
        let error = SpawnError::explain(Path::new("/nonexistent/prog"), None, enoent());
        assert_eq!(error.to_string(), "program \"/nonexistent/prog\" not found");
        let error = SpawnError::explain(Path::new("no-such-tool"), Some(&dir), enoent());
        assert_eq!(error.to_string(), "program \"no-such-tool\" not found in PATH");
        let script = dir.join("script.sh");
        std::fs::write(&script, "#!/nonexistent/sh\n").expect("the temp dir is writable");
        assert!(matches!(SpawnError::explain(&script, None, enoent()), SpawnError::MissingInterpreter { .. }));
    }
}
