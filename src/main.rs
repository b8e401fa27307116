use clap::Parser;

fn main() {
    // `lab check` runs first, without logging or the async runtime: it logs
    // nothing, and on small histories start-up is most of its time.
    if let Some(code) = lab::cli::run_check_args(std::env::args_os()) {
        std::process::exit(code);
    }
    let code = match lab::cli::run_blocking(lab::cli::Cli::parse()) {
        Ok(code) => code,
        Err(cli) => {
            let filter = tracing_subscriber::EnvFilter::try_from_env("LAB_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt.block_on(lab::cli::run(cli)),
                Err(e) => {
                    eprintln!("lab: cannot start the async runtime: {e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
