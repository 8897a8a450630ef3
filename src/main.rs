//! The `sluice` binary: flags and config file → `Config`, then serve until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sluice::broker::Broker;
use sluice::config::{self, Config};
use sluice::server::Server;

/// A Kafka-compatible broker. With no arguments: one node on 127.0.0.1:9092, data in ./sluice-data.
#[derive(Parser, Debug)]
#[command(name = "sluice", version)]
struct Args {
    /// Address to listen on (HOST:PORT).
    #[arg(long)]
    listen: Option<String>,
    /// Address clients are told to connect to (HOST:PORT); defaults to --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// Directory for logs and metadata (Kafka's `log.dirs`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This node's id (Kafka's `node.id`).
    #[arg(long)]
    node_id: Option<i32>,
    /// A Kafka `server.properties` file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Set a Kafka config key, e.g. --override num.partitions=3 (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Dynamic quorum, first start only (kafka-storage format --standalone): this
    /// controller alone is the first voter.
    #[arg(long, group = "initial")]
    standalone: bool,
    /// Dynamic quorum, first start only: the first voters, ID@HOST:PORT:DIRECTORY_ID,...
    #[arg(long, group = "initial", value_name = "LIST")]
    initial_controllers: Option<String>,
    /// Dynamic quorum, first start only: start as an observer, to be added with
    /// kafka-metadata-quorum add-controller.
    #[arg(long, group = "initial")]
    no_initial_controllers: bool,
}

fn build_config(args: &Args) -> Result<Config, String> {
    let mut c = Config::default();
    let mut pairs = Vec::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| config::Error::Read { path: path.clone(), source: e }.to_string())?;
        pairs.extend(config::parse_properties(&text, path).map_err(|e| e.to_string())?);
    }
    for o in &args.overrides {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("--override {o:?}: expected KEY=VALUE"))?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    for (k, v) in pairs {
        if !c.set(&k, &v).map_err(|e| e.to_string())? {
            tracing::warn!(key = %k, "config key is not used by sluice; ignored");
        }
    }
    if let Some(l) = &args.listen {
        c.set_listen(l).map_err(|e| e.to_string())?;
    }
    if let Some(a) = &args.advertise {
        c.set_advertise(a).map_err(|e| e.to_string())?;
    }
    if let Some(d) = &args.data_dir {
        c.data_dir = d.clone();
    }
    if let Some(n) = args.node_id {
        c.node_id = n;
    }
    if args.standalone {
        c.initial_controllers = config::InitialControllers::Standalone;
    } else if args.no_initial_controllers {
        c.initial_controllers = config::InitialControllers::None;
    } else if let Some(list) = &args.initial_controllers {
        c.initial_controllers = config::InitialControllers::Voters(config::parse_initial_controllers(list).map_err(|e| e.to_string())?);
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // openraft narrates every election and vote at info; its warnings are what an operator needs.
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    match rt.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    if !config.role_broker {
        return run_controller(config).await;
    }
    let started = std::time::Instant::now();
    let broker = Broker::open(config).map_err(|e| e.to_string())?;
    let server = Server::start(broker.clone()).await.map_err(|e| format!("cannot listen on {}: {e}", broker.config.listen))?;
    tracing::info!(
        addr = %server.local_addr,
        data_dir = %broker.config.data_dir.display(),
        cluster_id = %broker.identity.cluster_id,
        node_id = broker.config.node_id,
        startup_ms = started.elapsed().as_millis() as u64,
        "sluice is serving"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    broker.controlled_shutdown(std::time::Duration::from_secs(5)).await;
    server.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// `process.roles=controller`: a quorum member that serves no Kafka clients.
async fn run_controller(config: Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    let identity =
        sluice::metadata::identity::Identity::load_or_create(&config.data_dir, config.node_id, config.initial_directory_id()).map_err(|e| e.to_string())?;
    let store = sluice::metadata::MetadataStore::open_quorum(&config.data_dir.join("__cluster_metadata-0"), config.quorum(&identity.directory_id))
        .map_err(|e| e.to_string())?;
    let store = std::sync::Arc::new(store);
    // Controller-only nodes lead the quorum too; while they do, they judge brokers' liveness.
    sluice::controller::start(&store, std::sync::Arc::new(config.clone()));
    tracing::info!(
        raft_addr = ?store.raft().listen_addr,
        data_dir = %config.data_dir.display(),
        cluster_id = %identity.cluster_id,
        node_id = config.node_id,
        startup_ms = started.elapsed().as_millis() as u64,
        "sluice controller is serving"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    store.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
