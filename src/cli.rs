//! Command line: `wopigate run --config FILE` and `wopigate check --config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "wopigate",
    version,
    about = "OIDC-aware WOPI gateway for CS3 deployments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway in the foreground.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the configuration and print what would be served; exit 1 on any problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!("configuration {} is valid", config.display());
                println!("public listener: http://{}", c.server.listen);
                println!("wopiserver:      {}", c.wopiserver.url);
                println!("REVA gateway:    {}", c.reva.gateway);
                println!("token exchange:  {:?}", c.exchange.mode);
                for app in &c.office {
                    println!("office app:      {} ({})", app.name, app.discovery_url);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid configuration", config.display());
                for p in &e.problems {
                    eprintln!("  {p}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let c = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration", config.display());
                    for p in &e.problems {
                        eprintln!("  {p}");
                    }
                    return ExitCode::FAILURE;
                }
            };
            crate::telemetry::init(c.server.log_json);
            match crate::app::run(&config, c) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("cannot start: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
