//! The `rosey` binary: read the command line, run, and on a failure print it and exit with
//! its code.

use std::process::ExitCode;

use rosey::app::Error;

fn main() -> ExitCode {
    let cli = rosey::cli::Cli::from_env_and_args();
    match rosey::app::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error {
                // Config errors name themselves (`config error: …`, one line per problem).
                Error::Config(_) => eprintln!("{error}"),
                _ => eprintln!("error: {error}"),
            }
            ExitCode::from(error.exit_code())
        }
    }
}
