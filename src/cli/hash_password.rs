//! `rosey hash-password`: read a password (without echo from a terminal, asked twice; else
//! the first line of standard input) and print its argon2id hash for
//! `dashboard.auth.password_hash` or a `dashboard.users` entry.

use std::io::{self, BufRead, IsTerminal, Write};

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

use crate::config::hash_password;

/// The hash of the password read, in the PHC string format.
pub fn run() -> io::Result<String> {
    let password = if io::stdin().is_terminal() {
        let first = read_hidden("Password: ")?;
        if read_hidden("Again: ")? != first {
            return Err(io::Error::other("the two passwords differ; nothing was printed"));
        }
        first
    } else {
        read_line()?
    };
    if password.is_empty() {
        return Err(io::Error::other("the password is empty; nothing was printed"));
    }
    hash_password(&password).map_err(io::Error::other)
}

/// One line of standard input, without its line ending.
fn read_line() -> io::Result<String> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Ask on standard error, and read one line from the terminal with echo off.
fn read_hidden(prompt: &str) -> io::Result<String> {
    let mut stderr = io::stderr();
    write!(stderr, "{prompt}")?;
    stderr.flush()?;
    let stdin = io::stdin();
    let original = tcgetattr(&stdin)?;
    let mut quiet = original.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
    let line = read_line();
    // Echo comes back even when reading failed: the terminal must not stay silent.
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &original);
    writeln!(stderr)?;
    restored?;
    line
}
