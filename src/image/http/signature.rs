//! URL signatures, as imgproxy makes them: HMAC-SHA256(key, salt ‖ path),
//! where path is everything after the signature segment (starting with `/`),
//! encoded as URL-safe base64 without padding and optionally truncated to
//! `--signature-size` bytes. Several key/salt pairs may be configured (key
//! rotation); a signature that matches any pair is accepted. With no key,
//! any signature segment is accepted.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Default)]
pub struct Signer {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of the MAC that are kept (1..=32).
    size: usize,
}

impl Signer {
    /// From hex `keys` and `salts` (same count) and a signature size in bytes.
    pub fn new(
        keys: &[String],
        salts: &[String],
        size: usize,
    ) -> std::result::Result<Self, String> {
        if keys.len() != salts.len() {
            return Err(format!(
                "--key given {} times but --salt {} times; they come in pairs",
                keys.len(),
                salts.len()
            ));
        }
        if !(1..=32).contains(&size) {
            return Err("--signature-size must be 1..=32".into());
        }
        let pairs = keys
            .iter()
            .zip(salts)
            .map(|(k, s)| Ok((hex("--key", k)?, hex("--salt", s)?)))
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(Signer { pairs, size })
    }

    pub fn enabled(&self) -> bool {
        !self.pairs.is_empty()
    }

    /// The signature of `path` with the first key pair.
    pub fn sign(&self, path: &str) -> Option<String> {
        let (key, salt) = self.pairs.first()?;
        Some(crate::image::http::url::base64url_encode(
            &self.mac(key, salt, path),
        ))
    }

    fn mac(&self, key: &[u8], salt: &[u8], path: &str) -> Vec<u8> {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(salt);
        mac.update(path.as_bytes());
        let mut out = mac.finalize().into_bytes().to_vec();
        out.truncate(self.size);
        out
    }

    /// Check `signature` for `path`; 403 if it matches no key pair.
    pub fn verify(&self, signature: &str, path: &str) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let given = crate::image::http::url::base64url_decode(signature)
            .ok_or_else(|| Error::forbidden("invalid signature"))?;
        for (key, salt) in &self.pairs {
            let expected = self.mac(key, salt, path);
            if constant_time_eq(&given, &expected) {
                return Ok(());
            }
        }
        Err(Error::forbidden("invalid signature"))
    }
}

/// Compare without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(flag: &str, s: &str) -> std::result::Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{flag} must be hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("{flag}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const PATH: &str =
        "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png";

    fn imgproxy_docs_signer(size: usize) -> Signer {
        Signer::new(&["736563726574".into()], &["68656C6C6F".into()], size).unwrap()
    }

    #[test]
    fn imgproxy_test_vector() {
        let s = imgproxy_docs_signer(32);
        assert_eq!(
            s.sign(PATH).unwrap(),
            "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8"
        );
        s.verify("oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8", PATH)
            .unwrap();
        assert_eq!(
            s.verify("oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH9", PATH)
                .unwrap_err()
                .kind,
            ErrorKind::Forbidden
        );
        assert_eq!(
            s.verify("insecure", PATH).unwrap_err().kind,
            ErrorKind::Forbidden
        );
        assert_eq!(
            s.verify(
                "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8",
                "/w:1/plain/a.jpg"
            )
            .unwrap_err()
            .kind,
            ErrorKind::Forbidden
        );
    }

    #[test]
    fn truncated_signatures() {
        let s = imgproxy_docs_signer(8);
        let sig = s.sign(PATH).unwrap();
        // The first 8 bytes of the full MAC, re-encoded.
        let full = crate::image::http::url::base64url_decode(
            "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8",
        )
        .unwrap();
        assert_eq!(sig, crate::image::http::url::base64url_encode(&full[..8]));
        s.verify(&sig, PATH).unwrap();
    }

    #[test]
    fn any_of_several_pairs_and_no_key_accepts_anything() {
        let s = Signer::new(
            &["00ff".into(), "736563726574".into()],
            &["00".into(), "68656C6C6F".into()],
            32,
        )
        .unwrap();
        s.verify("oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8", PATH)
            .unwrap();
        let none = Signer::new(&[], &[], 32).unwrap();
        none.verify("insecure", PATH).unwrap();
        none.verify("_", PATH).unwrap();
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(Signer::new(&["zz".into()], &["00".into()], 32).is_err());
        assert!(Signer::new(&["00".into()], &[], 32).is_err());
        assert!(Signer::new(&["00".into()], &["00".into()], 0).is_err());
    }
}
