//! `sluice`: the control process and operator CLI (architecture §1).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice media gateway: control process and CLI"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start control and a supervised dataplane (first start creates an app and credentials).
    Up {
        /// Configuration file (default: the embedded default configuration).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides control.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run the control process alone (for systemd).
    Control {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Generate a local stream key.
    Keygen {
        /// App certificate, 32 hex characters.
        #[arg(long)]
        cert: String,
        /// RTC channel.
        #[arg(long)]
        channel: String,
        /// RTC uid.
        #[arg(long)]
        uid: String,
        /// Validity in seconds from now (local keys always expire; default one day).
        #[arg(long, default_value_t = 86_400)]
        expires_after: u64,
        /// Template ID to bind.
        #[arg(long)]
        template: Option<String>,
    },
    /// Validate a configuration file.
    CheckConfig {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Up { config, data_dir } => {
            runtime()?.block_on(sluice::supervise::run_up(config, data_dir))
        }
        Cmd::Control { config } => {
            let cfg = sluice::config::Config::load(&config)?;
            runtime()?.block_on(sluice::supervise::run_control(cfg))
        }
        Cmd::Keygen {
            cert,
            channel,
            uid,
            expires_after,
            template,
        } => {
            if expires_after == 0 {
                anyhow::bail!(
                    "--expires-after 0 would make a key that is already expired: local keys carry an absolute expiry and have no never-expires value"
                );
            }
            let expires_at = sluice::time::now_unix().saturating_add(expires_after);
            let claims = sluice::localkey::Claims {
                channel,
                uid,
                expires_at,
                template_id: template,
            };
            let key = sluice::localkey::encode(&cert, &claims, rand::random())?;
            println!("{key}");
            Ok(())
        }
        Cmd::CheckConfig { config } => {
            let cfg = sluice::config::Config::load(&config)?;
            println!(
                "{}: ok ({} apps, {} credentials, {} webhooks)",
                config.display(),
                cfg.apps.len(),
                cfg.control.credentials.len(),
                cfg.webhooks.len()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
