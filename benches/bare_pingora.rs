//! The floor of this architecture for `make bench`: a minimal Pingora `ProxyHttp` with round
//! robin over fixed upstreams and nothing else — no classification, no policies.
//!
//! Usage: bare_pingora LISTEN THREADS KEEPALIVE_POOL UPSTREAM [UPSTREAM…]
//! `BARE_WORK_STEALING=1` keeps Pingora's default work-stealing runtime (scimitar turns it off).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

// Same allocator as the scimitar binary, so the floor isolates what scimitar's hooks cost.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let b = self
            .0
            .select(b"", 16)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream"))?;
        let mut peer = HttpPeer::new(b, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        peer.options.read_timeout = Some(Duration::from_secs(30));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: bare_pingora LISTEN THREADS KEEPALIVE_POOL UPSTREAM [UPSTREAM...]");
        std::process::exit(2);
    }
    let upstreams: Vec<SocketAddr> = args[4..].iter().filter_map(|a| a.parse().ok()).collect();
    let lb = match LoadBalancer::try_from_iter(upstreams) {
        Ok(lb) => lb,
        Err(e) => {
            eprintln!("upstreams: {e}");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads: args[2].parse().unwrap_or(1),
        upstream_keepalive_pool_size: args[3].parse().unwrap_or(128),
        work_stealing: std::env::var("BARE_WORK_STEALING").is_ok_and(|v| v == "1"),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: format!("/tmp/bare_pingora_{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/bare_pingora_{}.sock", std::process::id()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = http_proxy_service(&server.configuration, Bare(Arc::new(lb)));
    svc.add_tcp(&args[1]);
    server.add_service(svc);
    server.run_forever();
}
