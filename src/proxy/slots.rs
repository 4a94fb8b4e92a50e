//! Per-server request slots (`max_conns`): a server that is full makes its request wait —
//! in the proxy, bounded by the pool's `queue_timeout` — instead of in the server's accept
//! queue, where an overflow costs a 1 s SYN retransmit or a connect timeout.

use pingora::{Error, ErrorType, Result};

use super::{Ctx, Scimitar};
use crate::config::Selection;
use crate::scim::error::ScimError;
use crate::upstream::{bit, Pick, Pool};

impl Scimitar {
    /// A slot on the picked server; a round-robin pool first tries its other servers, while
    /// a consistent pool waits for the picked one (it holds the key's writes).
    pub(super) async fn take_slot(&self, pool: &Pool, pick: Pick, ctx: &mut Ctx, key: &[u8]) -> Result<Pick> {
        if let Ok(slot) = pool.try_slot(pick.index) {
            ctx.server_slot = slot;
            return Ok(pick);
        }
        if pool.config.selection == Selection::RoundRobin {
            let mut full = ctx.tried | bit(pick.index);
            while let Ok(other) = pool.select(key, full) {
                if let Ok(slot) = pool.try_slot(other.index) {
                    ctx.server_slot = slot;
                    return Ok(other);
                }
                full |= bit(other.index);
            }
        }
        match pool.wait_slot(pick.index).await {
            Some(slot) => {
                ctx.server_slot = Some(slot);
                Ok(pick)
            }
            None => {
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
    }
}
