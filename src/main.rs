//! `scimitar [-c FILE] [-t] [-d] [-u]`: the flags keep Pingora's (and nginx's) meaning.
//! `scimitar hash-token` reads a token on stdin and prints the `admin.token_sha256` for it.
//! `scimitar import nginx FILE [-o OUT] [--allow-partial]` translates an nginx config
//! (exit 0: complete, 1: something changing request handling left out, 2: unreadable FILE).

use std::process::ExitCode;

use pingora::server::configuration::Opt;

// glibc malloc/free were ~11% of a proxied request's samples; mimalloc cut CPU/request ~14%.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_CONF: &str = "conf/scimitar.yaml";

/// The token comes on stdin, not as an argument, so it stays out of `ps` and shell history.
fn hash_token() -> ExitCode {
    let mut token = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut token) {
        eprintln!("scimitar hash-token: cannot read the token from stdin: {e}");
        return ExitCode::from(1);
    }
    let token = token.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        eprintln!("scimitar hash-token: give the token on stdin, e.g. `head -c 32 /dev/urandom | base64 | tee token | scimitar hash-token`");
        return ExitCode::from(1);
    }
    println!("{}", scimitar::admin::hash_token(token.as_bytes()));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("hash-token") {
        return hash_token();
    }
    if std::env::args().nth(1).as_deref() == Some("import") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return ExitCode::from(scimitar::nginx::import::run(&args));
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let opt = Opt::parse_args();
    // Serving: own every signal from here on (a `-t` run keeps the defaults, so Ctrl-C works).
    let signals = if opt.test {
        None
    } else {
        match scimitar::shutdown::claim() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("scimitar: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let path = opt.conf.clone().unwrap_or_else(|| DEFAULT_CONF.to_string());

    // Validate before Pingora boots: Pingora's own `-t` only checks its own settings.
    let cfg = match scimitar::config::load(&path) {
        Ok(cfg) => cfg,
        Err(problems) => {
            eprintln!(
                "scimitar: configuration file {path} has {} problem(s):",
                problems.0.len()
            );
            for p in &problems.0 {
                eprintln!("  {p}");
            }
            eprintln!("scimitar: configuration file {path} test failed");
            return ExitCode::from(1);
        }
    };
    for w in &cfg.warnings {
        log::warn!("configuration file {path}: {w}");
    }
    if opt.test {
        println!("scimitar: configuration file {path} test is successful");
        return ExitCode::SUCCESS;
    }
    let Some(signals) = signals else {
        return ExitCode::SUCCESS;
    };
    // Absolute, so a reload still finds the file after `-d` changed the working directory.
    let abs = std::path::absolute(&path).map_or(path, |p| p.display().to_string());
    if let Err(e) = scimitar::app::run(opt, cfg, abs, signals) {
        eprintln!("scimitar: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
