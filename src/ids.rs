//! Random identifiers and the test-identity rules (BSN 11-check, test entity indexes).
//!
//! Everything random in koppeltest comes from aws-lc-rs' system RNG, the same provider rustls
//! uses, so there is one source of randomness and one crypto provider.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Fills `n` bytes from the system RNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The system RNG only fails when the OS has no entropy source at all; nothing sensible can
    // continue then, and every caller would have to panic anyway.
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random number generator unavailable");
    buf
}

/// A lowercase hex string of `n` random bytes: used for codes, tokens and session ids.
pub fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `data`, lowercase hex (snapshot headers, evidence manifests).
pub fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A random RFC 4122 version-4 UUID, as MedMij-Request-ID and X-Correlation-ID want.
pub fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A SAML message ID: must start with a letter or underscore (xs:ID).
pub fn saml_id() -> String {
    format!("_{}", random_hex(20))
}

/// Whether `s` is a 9-digit BSN that passes the Dutch 11-check ("elfproef").
pub fn is_valid_bsn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 || s.len() != 9 {
        return false;
    }
    let sum: i64 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let weight = if i == 8 { -1 } else { 9 - i as i64 };
            weight * i64::from(*d)
        })
        .sum();
    sum % 11 == 0 && sum != 0
}

/// Whether `s` is a BSN from the test range koppeltest may use (9999xxxxx, valid 11-check).
pub fn is_test_bsn(s: &str) -> bool {
    s.starts_with("9999") && is_valid_bsn(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_bsns_from_the_brief_pass_the_eleven_check() {
        assert!(is_test_bsn("999911533"));
        assert!(is_test_bsn("999910796"));
        assert!(!is_valid_bsn("999911534"));
        assert!(
            !is_test_bsn("123456782"),
            "valid but outside the test range"
        );
        assert!(!is_valid_bsn("12345678"));
    }

    #[test]
    fn uuids_have_version_and_variant_bits() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, uuid_v4());
    }
}
