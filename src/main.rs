//! Synchronous entry point: pingora's `run_forever` must not run inside a tokio runtime.

fn main() -> std::process::ExitCode {
    wopigate::cli::main()
}
