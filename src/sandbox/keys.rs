//! The sandbox provider's signing key (RSA 2048, kept in the data directory) and RS256 JWTs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

pub struct SigningKey {
    pair: KeyPair,
    pub kid: String,
}

impl SigningKey {
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let pair = if path.exists() {
            let der = std::fs::read(path)?;
            KeyPair::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("{}: not an RSA PKCS#8 key: {e}", path.display()))?
        } else {
            let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("cannot generate an RSA key"))?;
            let der = pair.as_der().map_err(|_| anyhow::anyhow!("cannot encode the RSA key"))?;
            crate::crypto::write_private_file(path, der.as_ref())?;
            pair
        };
        let n = pair.public_key().modulus().big_endian_without_leading_zero().to_vec();
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(&n)[..12]);
        Ok(SigningKey { pair, kid })
    }

    /// The JSON Web Key Set with this key.
    pub fn jwks(&self) -> Value {
        let public = self.pair.public_key();
        json!({ "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]})
    }

    /// A compact JWS (RS256) of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "typ": "JWT", "alg": "RS256", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), signing_input.as_bytes(), &mut sig)
            .expect("RSA signing with a valid key does not fail");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_with_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("k.der")).unwrap();
        let again = SigningKey::load_or_create(&dir.path().join("k.der")).unwrap();
        assert_eq!(key.kid, again.kid, "the key is reused after a restart");
        let jwt = key.sign(&json!({"sub": "x"}));
        let jwks = key.jwks();
        let n = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["e"].as_str().unwrap()).unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let public = signature::RsaPublicKeyComponents { n: &n, e: &e };
        public
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .unwrap();
    }
}
