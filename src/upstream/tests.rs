use super::*;
use crate::config::{Passive, Selection, ServerAddr, Timeouts};
use std::time::Duration;

fn cfg(selection: Selection, servers: &[(u16, usize)]) -> PoolConfig {
    let servers = servers
        .iter()
        .map(|(port, weight)| ServerAddr {
            address: SocketAddr::from(([127, 0, 0, 1], *port)),
            weight: *weight,
        })
        .collect();
    let mut c = PoolConfig::new("t", servers, selection);
    c.passive = Passive {
        max_fails: 2,
        eject_for: Duration::from_secs(30),
        count_5xx: false,
    };
    c.timeouts = Timeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_secs(1),
        write: Duration::from_secs(1),
        idle: Duration::from_secs(1),
    };
    c
}

#[tokio::test]
async fn weighted_round_robin_spreads_by_weight() {
    let pool = Pool::build(cfg(Selection::RoundRobin, &[(1, 1), (2, 3)]))
        .await
        .unwrap();
    let mut counts = [0usize; 2];
    for _ in 0..400 {
        counts[pool.select(b"", 0).unwrap().index] += 1;
    }
    assert_eq!(counts, [100, 300]);
}

#[tokio::test]
async fn consistent_hashing_is_stable_and_moves_only_the_removed_servers_keys() {
    let four = Pool::build(cfg(Selection::Consistent, &[(1, 1), (2, 1), (3, 1), (4, 1)]))
        .await
        .unwrap();
    let three = Pool::build(cfg(Selection::Consistent, &[(1, 1), (2, 1), (3, 1)]))
        .await
        .unwrap();
    let keys: Vec<String> = (0..2000).map(|i| format!("tenant-{i}")).collect();
    let mut per_server = [0usize; 4];
    let mut moved = 0;
    for k in &keys {
        let a = four.select(k.as_bytes(), 0).unwrap();
        assert_eq!(a, four.select(k.as_bytes(), 0).unwrap(), "same key, same server");
        per_server[a.index] += 1;
        let b = three.select(k.as_bytes(), 0).unwrap();
        if a.addr != b.addr {
            moved += 1;
            assert_eq!(a.index, 3, "only keys of the removed server move ({k})");
        }
    }
    assert_eq!(moved, per_server[3]);
    for n in per_server {
        assert!((300..=700).contains(&n), "roughly even spread: {per_server:?}");
    }
}

#[tokio::test]
async fn tried_servers_are_skipped_then_pool_is_exhausted() {
    let pool = Pool::build(cfg(Selection::Consistent, &[(1, 1), (2, 1), (3, 1)]))
        .await
        .unwrap();
    let first = pool.select(b"k", 0).unwrap();
    let second = pool.select(b"k", bit(first.index)).unwrap();
    assert_ne!(first.index, second.index);
    let third = pool.select(b"k", bit(first.index) | bit(second.index)).unwrap();
    assert_eq!(
        pool.select(b"k", bit(first.index) | bit(second.index) | bit(third.index)),
        Err(NoServer::NoneHealthy)
    );
}

#[tokio::test]
async fn passively_ejected_server_is_avoided_unless_it_is_the_last() {
    let pool = Pool::build(cfg(Selection::RoundRobin, &[(1, 1), (2, 1)]))
        .await
        .unwrap();
    pool.failure(0);
    pool.failure(0);
    for _ in 0..10 {
        assert_eq!(pool.select(b"", 0).unwrap().index, 1);
    }
    pool.failure(1);
    pool.failure(1);
    // Both ejected: the pool still serves rather than failing every request.
    assert!(pool.select(b"", 0).is_ok());
    assert!(pool.healthy(0), "ejection is passive, not a failed health check");
}

#[tokio::test]
async fn peers_carry_the_pool_timeouts() {
    let pool = Pool::build(cfg(Selection::RoundRobin, &[(1, 1)])).await.unwrap();
    let peer = pool.peer(pool.select(b"", 0).unwrap());
    assert_eq!(peer.options.connection_timeout, Some(Duration::from_secs(1)));
    assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(1)));
    assert_eq!(peer._address.as_inet(), Some(&SocketAddr::from(([127, 0, 0, 1], 1))));
    assert_eq!(pool.retry_after_secs(), 30);
}
