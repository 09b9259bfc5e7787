use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rosey::cli::Cli::parse();
    match rosey::app::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
