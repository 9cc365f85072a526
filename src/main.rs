//! `rockit-edge`: a self-contained ROCKIT Edge server — one binary, one state directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use rockit_edge::config::{Overrides, Settings};
use rockit_edge::{commands, server, system_settings};

#[derive(Parser)]
#[command(name = "rockit-edge", version, about = "Self-contained ROCKIT Edge server")]
struct Cli {
    /// State directory (database, secrets, depot). Default ./rockit-edge-data.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// TOML settings file (also ROCKIT_EDGE_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates the state directory on first start).
    Serve {
        /// Address and port to listen on. Default 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
    },
    /// Print an admin token signed with this instance's admin secret, or revoke tokens by name.
    AdminToken {
        /// Who the token is for (its `username` claim; shown in the log).
        #[arg(long)]
        name: String,
        /// Lifetime such as 15m, 24h, 30d, or `never`. Default: the admin_token_ttl setting.
        #[arg(long, value_parser = ttl_argument, conflicts_with_all = ["revoke", "before"])]
        ttl: Option<String>,
        /// Instead of printing a token, refuse every token of this name issued before --before.
        #[arg(long)]
        revoke: bool,
        /// With --revoke: RFC 3339 time, e.g. 2026-11-26T18:00:00Z. Default: now.
        #[arg(long, requires = "revoke")]
        before: Option<String>,
    },
    /// Print the admin secret as base64, for existing HS256 token tooling.
    AdminSecret {
        /// Replace it with a new random secret first; every token signed with the old one is
        /// refused from then on (a running server picks it up at its next admin request).
        #[arg(long)]
        rotate: bool,
    },
    /// Write a consistent copy of the database while the server runs.
    Backup {
        /// Where to write the copy; must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Replace the database with a backup (stop the server first); the old one is kept aside.
    Restore {
        /// The backup file to restore.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Apply pending schema migrations (stop the server first), or only report them.
    Migrate {
        /// Only report; exit 1 when migrations are pending.
        #[arg(long)]
        check: bool,
    },
    /// Exit 0 when the running server answers /readyz, 1 otherwise.
    Healthcheck {
        /// Readiness URL. Default http://<listen>/readyz.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print version, schema version and build information.
    Version,
    /// Reference client: rebuild a published build, or update a tree of an older build with
    /// the patch only; every file is verified against its SHA-256.
    Fetch(commands::FetchArgs),
}

fn main() -> ExitCode {
    rockit_edge::malloc::tune();
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides { config_file: cli.config.clone(), state_dir: cli.state_dir.clone(), listen };
    let system_dir = std::path::Path::new(system_settings::SYSTEM_DIR);
    let env = match system_settings::environment(system_dir, std::env::vars(), cli.config.is_some()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("rockit-edge: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(&overrides, env) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("rockit-edge: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let outcome = match cli.command {
        Command::Serve { .. } => server::serve(settings),
        Command::AdminToken { name, revoke: true, before, .. } => {
            commands::revoke_admin_tokens(&settings, &name, before.as_deref())
        }
        Command::AdminToken { name, ttl, .. } => commands::admin_token(&settings, &name, ttl.as_deref()),
        Command::AdminSecret { rotate } => commands::admin_secret(&settings, rotate),
        Command::Backup { out } => commands::backup(&settings, &out),
        Command::Restore { from } => commands::restore(&settings, &from),
        Command::Migrate { check } => commands::migrate(&settings, check),
        Command::Healthcheck { url } => commands::healthcheck(&settings, url.as_deref()),
        Command::Version => commands::version(),
        Command::Fetch(args) => commands::fetch(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rockit-edge: {e}");
            ExitCode::from(1)
        }
    }
}

/// A malformed `--ttl` is bad usage (exit 2, like any malformed setting), caught by clap.
fn ttl_argument(text: &str) -> Result<String, String> {
    if text != "never" {
        rockit_edge::config::parse_duration(text).map_err(|e| format!("{e}, or `never`"))?;
    }
    Ok(text.to_string())
}

fn init_logging(settings: &Settings) {
    rockit_edge::logging::install(
        env_logger::Builder::new().parse_filters(&settings.log_level).parse_env("RUST_LOG").format_timestamp_millis(),
    );
}
