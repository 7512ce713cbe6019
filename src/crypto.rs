//! Secrets: random values, one-way hashes of bearer values, and sealing at rest.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

/// `bytes` random bytes, base64url without padding. From the thread's generator: a CSPRNG
/// (ChaCha12) seeded and periodically reseeded from the OS, which costs no system call per value
/// (the device authorization endpoint draws several per request).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a high-entropy bearer value (token, device code), hex. Such values need no slow hash:
/// they cannot be guessed, and the hash only keeps a stolen database from replaying them.
pub fn sha256_hex(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Argon2id hash in PHC form. Costly (tens of milliseconds): call it off the async threads.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A human-typable random password: 20 characters from an unambiguous alphabet (about 110 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Seals secrets at rest with XChaCha20-Poly1305 under one 256-bit key. A sealed value is
/// `v1.<base64(nonce || ciphertext)>`; the `purpose` is bound as associated data so that a sealed
/// device code cannot be swapped in where a sealed token is expected.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// Loads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            let text = std::fs::read_to_string(path)?;
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|_| anyhow::anyhow!("{} is not a base64 key", path.display()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes in base64", path.display()))?;
            return Ok(Self::from_key(&key));
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        write_private_file(path, STANDARD.encode(key).as_bytes())?;
        Ok(Self::from_key(&key))
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                chacha20poly1305::aead::Payload { msg: plaintext, aad: purpose.as_bytes() },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v1.{}", STANDARD.encode(out))
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let body = sealed
            .strip_prefix("v1.")
            .ok_or_else(|| anyhow::anyhow!("sealed value has an unknown format"))?;
        let raw = STANDARD.decode(body)?;
        if raw.len() < 24 {
            anyhow::bail!("sealed value is truncated");
        }
        let (nonce, ciphertext) = raw.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                chacha20poly1305::aead::Payload { msg: ciphertext, aad: purpose.as_bytes() },
            )
            .map_err(|_| anyhow::anyhow!("sealed value does not open with this key"))
    }

    pub fn open_string(&self, purpose: &str, sealed: &str) -> anyhow::Result<String> {
        Ok(String::from_utf8(self.open(purpose, sealed)?)?)
    }
}

/// Creates an empty file readable only by its owner, unless it exists: for database files, whose
/// journal files SQLite then creates with the same mode.
pub fn create_private_file_if_missing(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        write_private_file(path, b"")?;
    }
    Ok(())
}

/// Writes a file readable only by its owner (0600 on Unix), creating parent directories.
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_purpose() {
        let sealer = Sealer::from_key(&[7u8; 32]);
        let sealed = sealer.seal("device_code", b"secret");
        assert!(!sealed.contains("secret"));
        assert_eq!(sealer.open("device_code", &sealed).unwrap(), b"secret");
        assert!(sealer.open("tokens", &sealed).is_err());
        assert!(Sealer::from_key(&[8u8; 32]).open("device_code", &sealed).is_err());
    }

    #[test]
    fn passwords_verify() {
        let phc = hash_password("pw").unwrap();
        assert!(verify_password("pw", &phc));
        assert!(!verify_password("pW", &phc));
    }
}
