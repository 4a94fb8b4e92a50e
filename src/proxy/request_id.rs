//! `X-Request-Id` values: kept when the client sent one, otherwise 32 hex digits from a
//! process-unique seed and a counter (no syscall, no lock per request).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use once_cell::sync::Lazy;

static SEED: Lazy<u64> = Lazy::new(|| {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    mix(t ^ (u64::from(std::process::id()) << 32))
});
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn mix(mut z: u64) -> u64 {
    // splitmix64: a bijection, so distinct counters give distinct ids within a process.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fresh id as 32 lowercase hex digits.
pub fn generate() -> [u8; 32] {
    let n = COUNTER.fetch_add(1, Relaxed);
    let hi = *SEED;
    let lo = mix(n ^ hi.rotate_left(17));
    let mut out = [0u8; 32];
    for (i, b) in hi.to_be_bytes().iter().chain(lo.to_be_bytes().iter()).enumerate() {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out[i * 2] = HEX[(b >> 4) as usize];
        out[i * 2 + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// A client-supplied id is kept only if it is short and printable, so it is safe to log.
pub fn acceptable(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_hex() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.iter().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn client_ids_are_validated() {
        assert!(acceptable(b"abc-123"));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"has space"));
        assert!(!acceptable(&[b'a'; 200]));
    }
}
