//! Edge credential glue: a route's `auth` ([`crate::edgeauth`]) judged right after routing,
//! counted, and remembered for the access log.

use pingora::proxy::Session;

use super::Ctx;
use crate::edgeauth::RouteAuth;
use crate::metrics::Refusal;
use crate::runtime::Runtime;
use crate::scim::error::ScimError;

impl Runtime {
    /// The answer to send when `auth` refuses the request; `None` lets it go on.
    pub(super) fn edge_auth<'a>(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        route: usize,
        auth: &'a RouteAuth,
    ) -> Option<&'a ScimError> {
        let verdict = auth.check(&session.req_header().headers, self.tenant(session, ctx));
        let counters = self.auth_counters.get(route).and_then(Option::as_ref);
        match verdict {
            Ok(i) => {
                if let Some(c) = counters {
                    c.accepted(i);
                }
                ctx.obs.credential = Some(i);
                None
            }
            Err(why) => {
                if let Some(c) = counters {
                    c.refused(why);
                }
                ctx.obs.refusal = Some(Refusal::Auth(why));
                Some(auth.refusal(why))
            }
        }
    }
}
