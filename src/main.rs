use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = rosey::cli::Cli::from_env_and_args();
    match rosey::app::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
