//! What the control commands print, as a terminal will show it: text from the bot (names,
//! versions, log lines) with control characters escaped, columns padded by display width (an
//! emoji takes two cells), colour only when standard output is a terminal and `NO_COLOR` is
//! not set, and a closed standard output (`rosey logs -f | head`) ending the command quietly.

use std::io::{IsTerminal, Write};

use unicode_width::UnicodeWidthStr;

pub use crate::chat::console::escaped;

/// A colour the state column may take, as the dashboard's cards colour a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Yellow,
    Red,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Red => "31",
        }
    }
}

/// Whether to colour what is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    colour: bool,
}

impl Style {
    #[cfg(test)]
    pub const PLAIN: Style = Style { colour: false };
    #[cfg(test)]
    pub const COLOURED: Style = Style { colour: true };

    /// Colour for a terminal, unless `NO_COLOR` is set to anything but the empty string
    /// (<https://no-color.org>).
    pub fn for_stdout() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { colour: !no_color && std::io::stdout().is_terminal() }
    }

    /// `text` in `colour`, when colouring.
    pub fn paint(self, text: &str, colour: Option<Colour>) -> String {
        match colour {
            Some(colour) if self.colour => format!("\x1b[{}m{text}\x1b[0m", colour.code()),
            _ => text.to_owned(),
        }
    }
}

/// How many terminal cells `text` takes.
pub fn width(text: &str) -> usize {
    text.width()
}

/// Why printing stopped.
#[derive(Debug)]
pub enum Closed {
    /// Standard output went away (a pipe's reader ended): nothing more to do.
    Quietly,
    Failed(std::io::Error),
}

/// Write `text` to standard output at once (a followed log must show each line as it comes).
pub fn print(text: &str) -> Result<(), Closed> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Closed::Quietly,
        _ => Closed::Failed(e),
    })
}

/// Ctrl-C while following a log or the events ends the command with exit code 0: the operator
/// has seen what they wanted. Each line is written whole, so nothing is left half printed but
/// a colour, which the handler resets.
pub fn exit_quietly_on_interrupt(style: Style) {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

    extern "C" fn plain_exit(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe; nothing needs to be flushed (each line is).
        unsafe { libc::_exit(0) }
    }
    extern "C" fn reset_colour_and_exit(_: libc::c_int) {
        const RESET: &[u8] = b"\x1b[0m";
        // SAFETY: write and _exit are async-signal-safe; RESET outlives the call.
        unsafe {
            libc::write(libc::STDOUT_FILENO, RESET.as_ptr().cast(), RESET.len());
            libc::_exit(0)
        }
    }
    let handler = if style.colour { reset_colour_and_exit } else { plain_exit };
    let action = SigAction::new(SigHandler::Handler(handler), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handlers only call async-signal-safe functions.
    if let Err(e) = unsafe { sigaction(Signal::SIGINT, &action) } {
        // Without it Ctrl-C still ends the command, by the signal's default action.
        eprintln!("warning: cannot handle Ctrl-C ({e}); it will end rosey with status 130");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(Style::PLAIN.paint("RUNNING", Some(Colour::Green)), "RUNNING");
        assert_eq!(Style::COLOURED.paint("FAILED", Some(Colour::Red)), "\x1b[31mFAILED\x1b[0m");
        assert_eq!(Style::COLOURED.paint("STOPPED", None), "STOPPED");
    }

    #[test]
    fn width_counts_cells_not_bytes() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("🦀"), 2);
        assert_eq!(width("é"), 1);
    }
}
