//! Server selection over a pool's fixed server list, allocation-free: a weighted round-robin
//! wheel, or the Ketama ring Pingora's `Consistent` selector builds (so keys land where they
//! did). `accept` decides eligibility (health, ejection, already tried); the walk falls back
//! to the next candidates the way Pingora's selectors do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use pingora_ketama::{Bucket, Continuum};

use crate::config::{Selection, ServerAddr};

pub enum Selector {
    /// Each server index repeated `weight` times; the first pick follows the wheel, fallbacks
    /// walk the servers in order from there.
    RoundRobin {
        wheel: Box<[u16]>,
        next: AtomicUsize,
        n: usize,
    },
    Ketama {
        ring: Continuum,
        addrs: Box<[SocketAddr]>,
        /// Points on the ring (160 per unit of weight): a walk never needs more steps.
        points: usize,
    },
}

impl Selector {
    pub fn new(selection: Selection, servers: &[ServerAddr]) -> Self {
        match selection {
            Selection::RoundRobin => {
                let wheel: Vec<u16> = servers
                    .iter()
                    .enumerate()
                    .flat_map(|(i, s)| std::iter::repeat_n(i as u16, s.weight.max(1)))
                    .collect();
                Selector::RoundRobin {
                    wheel: wheel.into(),
                    next: AtomicUsize::new(0),
                    n: servers.len(),
                }
            }
            Selection::Consistent => {
                let buckets: Vec<Bucket> = servers
                    .iter()
                    .map(|s| Bucket::new(s.address, s.weight as u32))
                    .collect();
                Selector::Ketama {
                    ring: Continuum::new(&buckets),
                    addrs: servers.iter().map(|s| s.address).collect(),
                    points: servers.iter().map(|s| 160 * s.weight.max(1)).sum(),
                }
            }
        }
    }

    /// The first server index `accept` takes, in this selector's order for `key`.
    pub fn pick(&self, key: &[u8], mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        match self {
            Selector::RoundRobin { wheel, next, n } => {
                if wheel.is_empty() {
                    return None;
                }
                let start = usize::from(wheel[next.fetch_add(1, Relaxed) % wheel.len()]);
                (0..*n).map(|k| (start + k) % n).find(|&i| accept(i))
            }
            Selector::Ketama { ring, addrs, points } => {
                let n = addrs.len();
                let mut idx = ring.node_idx(key);
                let mut seen = 0u64;
                let mut distinct = 0;
                for _ in 0..*points {
                    let addr = ring.get_addr(&mut idx)?;
                    let Some(i) = addrs.iter().position(|a| a == addr) else {
                        continue;
                    };
                    let b = super::bit(i);
                    if seen & b != 0 && n <= 64 {
                        continue;
                    }
                    seen |= b;
                    distinct += 1;
                    if accept(i) {
                        return Some(i);
                    }
                    if distinct >= n {
                        return None;
                    }
                }
                None
            }
        }
    }
}
