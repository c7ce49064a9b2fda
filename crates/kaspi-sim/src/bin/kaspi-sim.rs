//! Runs the Kaspi simulator alone: `kaspi-sim [ADDR]` (default `127.0.0.1:9000`, or
//! `KASPI_SIM_ADDR`); `KASPI_SIM_SEED` sets the seed. Logs go to stderr (`RUST_LOG`).

use kaspi_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KASPI_SIM_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let mut config = SimConfig::default();
    if let Some(seed) = std::env::var("KASPI_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.seed = seed;
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("kaspi simulator on http://{}", listener.local_addr()?);
    kaspi_sim::serve(listener, Simulator::new(config)).await
}
