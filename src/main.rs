//! The `outboxd` binary: parses arguments, sets up logging and calls into the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use outboxd::{ConfigError, RunArgs};

/// jemalloc, not glibc's malloc. A catalog reload (100 000 endpoints: ~50 MB) is built on
/// whichever runtime thread loads it, between that thread's live allocations; once the old
/// catalog was freed, glibc kept ~30 MB of its pages resident even after `malloc_trim`
/// (fragmentation), so RSS went 70 → 82 → 116 MB over two reloads. jemalloc keeps each size
/// class in its own pages and returns freed pages to the kernel by itself: RSS stays at
/// ~65–75 MB after each reload (BENCHMARKS.md, "Memory with 100 000 endpoints, round 4").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation (`_RJEM_MALLOC_CONF` in the
/// environment overrides them): a background thread returns freed pages to the kernel about
/// a second after they were freed (`dirty_decay_ms`; the default is 10 s), at once
/// (`muzzy_decay_ms:0`), also while the sidecar is idle. Without these, only allocating
/// threads purge, and RSS stayed at ~117 MB after two reloads, as with glibc.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "outboxd",
    version,
    about = "Transactional-outbox webhook sidecar for PostgreSQL"
)]
struct Cli {
    /// Log format: text or json.
    #[arg(
        long,
        env = "OUTBOXD_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar: route, deliver, retry (until SIGTERM/SIGINT).
    Run(RunArgs),
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Print the OpenAPI 3.1 document of the admin API (/v1) and exit.
    Openapi,
    /// Print a one-time sign-in link to the console (valid 10 minutes) and exit.
    ConsoleLink {
        #[arg(long, env = "OUTBOXD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Where browsers reach this outboxd's listener.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        base_url: String,
    },
    /// See it work: throwaway PostgreSQL (unless DATABASE_URL is set), local receiver,
    /// sample events, the attempts table, and a quick load.
    Demo {
        #[command(flatten)]
        run: RunArgs,
        /// Events in the quick load at the end (0 to skip).
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Exit at the end instead of staying up for the console.
        #[arg(long)]
        exit: bool,
    },
}

fn init_logging(format: &str, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OUTBOXD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story; logs would drown it.
    let default_filter = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    init_logging(&cli.log_format, default_filter);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outboxd: error: {e:#}");
            // 2: the configuration is wrong (as for clap's usage errors); 1: anything else.
            if e.downcast_ref::<outboxd::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate { database_url } => {
            let mut client = outboxd::connect(&database_url)
                .await
                .context("connecting to DATABASE_URL")?;
            match outboxd::migrate(&mut client).await? {
                outboxd::Schema::Current(v) => {
                    println!("migrations applied; schema at version {v}")
                }
                newer => println!("nothing applied: {}", newer.warning().unwrap_or_default()),
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", outboxd::openapi_document());
            Ok(())
        }
        Command::ConsoleLink {
            admin_token,
            base_url,
        } => {
            println!("{}", outboxd::console_link(&admin_token, &base_url));
            Ok(())
        }
        Command::Run(args) => {
            let url = args.database_url.clone().ok_or(ConfigError::Invalid {
                name: "DATABASE_URL",
                message: "is required (or --database-url)".into(),
            })?;
            let config = args.into_config(url)?;
            tracing::info!(?config, "starting");
            // Signals first: a SIGTERM while starting (e.g. a rolling restart right after a
            // crash restart) must still end in a clean exit 0.
            let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
            let mut stop = Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: stopping gracefully"),
                    _ = int.recv() => tracing::info!("SIGINT: stopping gracefully"),
                }
            });
            let engine = tokio::select! {
                engine = outboxd::Engine::start(config) => engine?,
                _ = &mut stop => {
                    tracing::info!("stopped before start-up finished");
                    return Ok(());
                }
            };
            let token = engine.shutdown_token();
            tokio::spawn(async move {
                stop.await;
                token.cancel();
            });
            engine.wait().await;
            Ok(())
        }
        Command::Demo {
            mut run,
            events,
            exit,
        } => {
            let url = run.database_url.clone();
            if std::env::var_os("OUTBOXD_LISTEN").is_none() {
                // Any free port, so the demo runs next to a real outboxd on 9090.
                run.listen = ([127, 0, 0, 1], 0).into();
            }
            let config = run.into_config(
                url.clone()
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1/postgres".into()),
            )?;
            let stay = (!exit).then_some(async {
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            });
            outboxd::demo::run(config, url, events, stay).await?;
            Ok(())
        }
    }
}
