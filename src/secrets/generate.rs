//! Making new secrets from the operating system's random source.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Secret;

/// 32 random bytes (256 bits) from the OS, URL-safe base64 without padding:
/// 43 characters that survive any config file, URL or shell unquoted.
pub fn password() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new 2048-bit RSA key for DKIM signing, as PKCS#8 PEM. voisin makes it
/// (rather than the mail server at first start) so that `voisin dns` can
/// print the DKIM record before anything is deployed.
pub fn dkim_key() -> Secret {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
        .expect("the operating system's random source works");
    let pem = key
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .expect("a fresh key encodes");
    Secret::new(pem.as_str())
}

/// The public half of a DKIM key as the `p=` of its DNS record: the DER
/// `SubjectPublicKeyInfo`, base64. `None` when the PEM is not an RSA key.
pub fn dkim_public_record(private_pem: &Secret) -> Option<String> {
    use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
    let key = rsa::PrivateKey::from_pkcs8_pem(private_pem.expose()).ok()?;
    let der = key.to_public_key().to_public_key_der().ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

/// A SHA512-CRYPT hash (`{SHA512-CRYPT}$6$…` minus the prefix) of
/// `password` with a fresh random salt: what docker-mailserver's accounts
/// file holds. Made once, when the password is made, and kept with the
/// secrets, so that rendering stays fast and byte-for-byte repeatable.
pub fn sha512_crypt(password: &Secret) -> Secret {
    use sha_crypt::PasswordHasher as _;
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).expect("the operating system's random source works");
    let hash = sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .expect("SHA512-crypt accepts any password and a 12-byte salt");
    Secret::new(hash.to_string())
}

/// An argon2id hash of `password` in PHC format, with a fresh random salt:
/// what the lending board's members file holds.
///
/// The parameters are one of OWASP's equivalent argon2id settings (7 MiB,
/// five passes) rather than the crate's default (19 MiB, two): the same
/// cost to an attacker, but each sign-in on the board needs a third of the
/// memory, which keeps it within its budget on a small server.
pub fn argon2(password: &Secret) -> Secret {
    use argon2::PasswordHasher as _;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source works");
    let hash = argon2_hasher()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .expect("argon2 accepts any password and a 16-byte salt");
    Secret::new(hash.to_string())
}

/// The argon2id hasher voisin uses everywhere (see [`argon2`]).
pub fn argon2_hasher() -> argon2::Argon2<'static> {
    // 7 MiB, 5 passes, 1 lane: valid constants, so the default is never used.
    let params = argon2::Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_hashes_verify_with_their_password() {
        use sha_crypt::PasswordVerifier as _;
        let pw = password();
        let hash = sha512_crypt(&pw);
        assert!(hash.expose().starts_with("$6$"), "{}", hash.expose());
        sha_crypt::ShaCrypt::SHA512
            .verify_password(pw.expose().as_bytes(), hash.expose())
            .expect("verifies");
        assert!(
            sha_crypt::ShaCrypt::SHA512
                .verify_password(b"wrong", hash.expose())
                .is_err()
        );
    }

    #[test]
    fn argon2_hashes_are_phc_strings() {
        let hash = argon2(&password());
        assert!(
            hash.expose().starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
            "{}",
            hash.expose()
        );
    }

    #[test]
    fn dkim_public_record_matches_the_key() {
        let key = dkim_key();
        assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        let record = dkim_public_record(&key).expect("an RSA key");
        // RSA-2048 SubjectPublicKeyInfo is 294 bytes: 392 base64 characters.
        assert_eq!(record.len(), 392);
    }

    #[test]
    fn passwords_carry_256_bits_and_differ() {
        let a = password();
        let b = password();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert!(
            a.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
