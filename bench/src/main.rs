use std::process::ExitCode;

use clap::Parser;
use quiver_bench::cli::{execute, Cli};
use quiver_bench::report::emit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(&cli) {
        Ok(outcome) => {
            emit(&outcome.records, cli.json(), &outcome.extra);
            if outcome.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                for failure in &outcome.failures {
                    eprintln!("error: {failure}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
