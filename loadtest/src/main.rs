//! `gavel-loadtest`: the load-test harness (a client of the protocol, nothing more).
//!
//! Not built yet: the load-test issue adds the `market`, `connections`, `fanout` and `soak`
//! scenarios. Until then the binary says so and exits with an error.

fn main() -> std::process::ExitCode {
    let _ = gavel_protocol::MAX_FRAME_BYTES;
    #[allow(clippy::print_stderr)]
    {
        eprintln!("gavel-loadtest: no scenarios yet (see the load-test issue)");
    }
    std::process::ExitCode::FAILURE
}
