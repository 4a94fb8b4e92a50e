//! Per-server request slots (`max_conns`): a server that is full makes its request wait —
//! in the proxy, bounded by the pool's `queue_timeout` — instead of in the server's accept
//! queue, where an overflow costs a 1 s SYN retransmit or a connect timeout.

use pingora::{Error, ErrorType, Result};

use super::Ctx;
use crate::runtime::Runtime;
use crate::scim::error::ScimError;
use crate::upstream::{Pick, Pool};

impl Runtime {
    /// A slot on the picked server or, in a round-robin pool, on another free one
    /// ([`Pool::take_slot`]); past the pool's `queue_timeout` a 503 with `Retry-After`.
    pub(super) async fn take_slot(&self, pool: &Pool, pick: Pick, ctx: &mut Ctx, key: &[u8]) -> Result<Pick> {
        if let Some((got, slot)) = pool.take_slot(pick, key, ctx.tried).await {
            ctx.server_slot = slot;
            return Ok(got);
        }
        let wait = pool.config.conn_wait;
        ctx.error = Some(
            ScimError::new(
                503,
                format!(
                    "server {} of upstream `{}` stayed at its max_conns for {wait:?}",
                    pick.addr,
                    pool.name()
                ),
            )
            .retry_after(crate::scim::error::retry_after_secs(wait)),
        );
        Error::e_explain(ErrorType::HTTPStatus(503), "server at max_conns")
    }
}
