//! llmtap-bench: what `llmtap proxy` costs a call, side by side with no proxy and with nginx.
//! Run through `scripts/bench.sh`; `llmtap-bench run --help` lists the knobs. By hand:
//! `llmtap-bench encoder` times the JSONL exporter's OTLP/JSON encoder alone (ADR 0013).

mod clock;
mod encoder;
mod exporter;
mod load;
mod run;
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "llmtap-bench", about = "llmtap proxy vs no proxy vs nginx")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The fixed-latency OpenAI-shaped upstream (JSON, or SSE when the request says stream).
    Upstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Delay before every response head, µs.
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
        /// SSE content chunks per streamed answer.
        #[arg(long, default_value_t = 20)]
        chunks: usize,
        /// Delay between SSE chunks, µs.
        #[arg(long, default_value_t = 10_000)]
        chunk_delay_us: u64,
    },
    /// JSONL exporter throughput (prints JSON).
    Exporter {
        #[arg(long, default_value = "target/bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        spans: usize,
        #[arg(long, default_value_t = 512)]
        batch: usize,
    },
    /// SDK span start+end cost (prints JSON).
    Sdk {
        #[arg(long, default_value = "target/bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        iterations: usize,
    },
    /// The JSONL exporter's OTLP/JSON encoder against the proto path it replaced, on llmtap's
    /// span shapes (ADR 0013; prints JSON). Build with `--release` for numbers that matter.
    Encoder {
        /// Spans per batch, cycling through the span shapes.
        #[arg(long, default_value_t = 512)]
        spans: usize,
        /// Rounds of each path, alternating; the best round counts.
        #[arg(long, default_value_t = 7)]
        rounds: u32,
        /// Batches encoded per round.
        #[arg(long, default_value_t = 20)]
        reps: u32,
    },
    /// One open-loop fixed-rate run against any URL (for A/B comparisons; prints JSON).
    Rate {
        #[arg(long)]
        url: String,
        #[arg(long)]
        rps: f64,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Streamed calls against any URL (TTFB and per-chunk transit, for A/B comparisons; prints
    /// JSON). The upstream behind the URL must be `llmtap-bench upstream`, whose chunks carry
    /// their send time.
    Streams {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 400)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
        /// The upstream's inter-chunk delay, µs (a chunk in transit longer was held back).
        #[arg(long, default_value_t = 10_000)]
        gap_us: u64,
        /// Request body file (a streamed chat request, e.g. a long agent conversation) instead
        /// of the built-in short one.
        #[arg(long)]
        body: Option<PathBuf>,
    },
    /// The whole benchmark: starts everything, measures, prints the table, writes JSON.
    Run(Box<run::RunArgs>),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Upstream {
            listen,
            delay_us,
            chunks,
            chunk_delay_us,
        } => runtime()?.block_on(async move {
            // The accept queue of a real model server (uvicorn asks for 2048, Go for
            // somaxconn), not the standard library's 128, for direct and proxied paths alike.
            let listener = llmtap_proxy::listen::bind(listen.parse()?)?;
            println!("{}", listener.local_addr()?);
            upstream::serve(
                listener,
                upstream::UpstreamConfig {
                    delay: Duration::from_micros(delay_us),
                    chunks,
                    chunk_delay: Duration::from_micros(chunk_delay_us),
                },
            )
            .await;
            Ok(())
        }),
        Cmd::Exporter { dir, spans, batch } => {
            std::fs::create_dir_all(&dir)?;
            let r = runtime()?.block_on(exporter::exporter(&dir, spans, batch))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Sdk { dir, iterations } => {
            std::fs::create_dir_all(&dir)?;
            let r = runtime()?.block_on(async { exporter::sdk(&dir, iterations) })?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Encoder {
            spans,
            rounds,
            reps,
        } => {
            let r = encoder::encoder(spans, rounds, reps)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Rate { url, rps, seconds } => runtime()?.block_on(async move {
            let client = load::client();
            let r =
                load::fixed_rate(&client, &url, &[], rps, Duration::from_secs(seconds), 2048).await;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }),
        Cmd::Streams {
            url,
            count,
            concurrency,
            gap_us,
            body,
        } => runtime()?.block_on(async move {
            let client = load::client();
            let body = match body {
                Some(path) => bytes::Bytes::from(std::fs::read(path)?),
                None => bytes::Bytes::from_static(load::STREAM_BODY.as_bytes()),
            };
            let r = load::stream_samples(&client, &url, body, count, concurrency, Vec::new())
                .await
                .into_run(gap_us as f64);
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }),
        Cmd::Run(args) => runtime()?.block_on(run::run(*args)),
    }
}
