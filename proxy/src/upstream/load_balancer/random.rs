//! RANDOM (Envoy's `RandomLoadBalancer`): one uniform random number chooses the
//! priority level (`r % 100 + 1` against the loads) and the host (`r % hosts`), weights
//! ignored, exactly as Envoy uses a single draw for both. An excluded host is replaced
//! by the next allowed host of the same source.

use super::{first_allowed, LbContext, Pick, PickRng};
use crate::upstream::priority::PrioritySet;

#[derive(Debug, Default, Clone, Copy)]
pub struct RandomLb;

impl RandomLb {
    pub fn choose(&mut self, ps: &PrioritySet, ctx: &LbContext<'_>, rng: &mut PickRng) -> Option<Pick> {
        let r = rng.next_u64();
        let choice = ps.choose(r)?;
        let hosts = ps.source_hosts(choice);
        if hosts.is_empty() {
            return None;
        }
        let start = (r % hosts.len() as u64) as usize;
        let index = if ctx.exclude.is_empty() {
            hosts[start]
        } else {
            first_allowed(hosts, start, ctx).unwrap_or(hosts[start])
        };
        Some(Pick { index: index as usize, panic: choice.panic })
    }
}
