//! Numbers as text on the stack, for code that runs on every request (`write!` through `fmt`
//! costs far more than the digits).

/// The decimal digits of `n`, written into `buf`.
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits() {
        let mut b = [0; 20];
        assert_eq!(super::decimal(0, &mut b), b"0");
        assert_eq!(super::decimal(1234567890, &mut b), b"1234567890");
        assert_eq!(super::decimal(u64::MAX, &mut b), b"18446744073709551615");
    }
}
