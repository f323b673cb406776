//! `gavel-loadtest`: gavel's load-test harness — a client of the wire protocol like any
//! other (it depends on `gavel-protocol` only, and mints its own tokens with the server's
//! secret). See `gavel-loadtest --help` and docs/benchmarks.md.
//!
//! Layout:
//! - [`cli`] — flags and scenarios;
//! - [`run`] — the parent: target, passes, verdict, report; [`passes`] — one pass of each
//!   scenario; [`sampler`] — sampling and progress while it runs; [`pass_report`] — folding
//!   the workers' results;
//! - [`worker`] — the processes that hold connections (`--workers N` children, or one task);
//! - [`market`], [`conns`], [`fanout`] — the scenarios' client sides;
//! - [`baseline`] — the baseline broadcast server;
//! - [`client`], [`net`] — WebSocket and HTTP plumbing, tokens;
//! - [`stats`], [`digest`], [`sysmon`] — latency histograms, the loss check, /proc readings;
//! - [`report`], [`plot`] — the summary table, `--json`, `--plot`;
//! - [`serverproc`] — servers the harness starts (`--smoke`, `--baseline`).

mod baseline;
mod cli;
mod client;
mod conns;
mod digest;
mod fanout;
mod market;
mod net;
mod pass_report;
mod passes;
mod plot;
mod report;
mod run;
mod sampler;
mod serverproc;
mod stats;
mod sysmon;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            run::say(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if cli.common.worker {
        return match runtime.block_on(worker::child_main()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                run::say(&format!("worker: {e:#}"));
                ExitCode::FAILURE
            }
        };
    }
    let outcome = runtime.block_on(run::run(cli));
    // Connection tasks may still be closing: do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            run::say(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}
