use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

use super::*;

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn key_file_round_trips_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let id = Identity::generate().unwrap();
    id.save(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let back = Identity::load(&path).unwrap();
    assert_eq!(back.peer_id(), id.peer_id());
    // Overwrite is atomic and leaves no temporary file behind.
    Identity::generate().unwrap().save(&path).unwrap();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn key_file_readable_by_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    Identity::generate().unwrap().save(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = Identity::load(&path).unwrap_err();
    assert!(
        matches!(err, IdentityError::InsecurePermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"));
}

#[test]
fn truncated_garbage_and_empty_key_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.key");
    Identity::generate().unwrap().save(&good).unwrap();
    let pem = fs::read(&good).unwrap();

    let path = dir.path().join("bad.key");
    write_mode(&path, &pem[..pem.len() / 2], 0o600);
    assert!(matches!(
        Identity::load(&path),
        Err(IdentityError::BadPem { .. })
    ));
    write_mode(&path, b"garbage\x00\xff not a key", 0o600);
    assert!(matches!(
        Identity::load(&path),
        Err(IdentityError::BadPem { .. })
    ));
    write_mode(&path, b"", 0o600);
    assert!(matches!(
        Identity::load(&path),
        Err(IdentityError::BadLength { .. })
    ));
    write_mode(&path, &[b'A'; 5000], 0o600);
    assert!(matches!(
        Identity::load(&path),
        Err(IdentityError::BadLength { .. })
    ));
    let missing = dir.path().join("missing.key");
    assert!(matches!(
        Identity::load(&missing),
        Err(IdentityError::Io { .. })
    ));
}

#[test]
fn openssl_style_v1_key_file_loads() {
    // RFC 8032 7.1 TEST 1 secret key as PKCS#8 v1 PEM, as `openssl genpkey` writes it.
    let pem = "-----BEGIN PRIVATE KEY-----\n\
               MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
               -----END PRIVATE KEY-----\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openssl.key");
    write_mode(&path, pem.as_bytes(), 0o600);
    let id = Identity::load(&path).unwrap();
    assert_eq!(
        id.peer_id().to_string(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    // And we write the same bytes back.
    let out = dir.path().join("ours.key");
    id.save(&out).unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap(), pem);
    // PKCS#8 v2 (with the public key) is accepted too.
    let v2 = id.key.to_pkcs8_pem(LineEnding::LF).unwrap();
    write_mode(&path, v2.as_bytes(), 0o600);
    assert_eq!(Identity::load(&path).unwrap().peer_id(), id.peer_id());
}

#[test]
fn raw_secret_of_wrong_length_refused() {
    assert!(matches!(
        Identity::from_secret_bytes(&[7; 31]),
        Err(IdentityError::BadLength { len: 31, .. })
    ));
    assert!(Identity::from_secret_bytes(&[7; 32]).is_ok());
}

#[test]
fn peer_id_hex_round_trips() {
    let id = Identity::generate().unwrap().peer_id();
    let text = id.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text, text.to_lowercase());
    assert_eq!(text.parse::<PeerId>().unwrap(), id);
    assert!(text[..63].parse::<PeerId>().is_err());
    assert!(format!("{}zz", &text[..62]).parse::<PeerId>().is_err());
    assert!(format!("{text}00").parse::<PeerId>().is_err());
    assert!(id.verifying_key().is_ok());
}

#[test]
fn debug_never_shows_the_secret() {
    let id = Identity::from_secret_bytes(&[0xab; 32]).unwrap();
    let dbg = format!("{id:?}");
    assert!(!dbg.contains("abab"), "{dbg}");
    assert!(dbg.contains("PeerId("));
    assert!(format!("{:?}", id.peer_id()).len() < 24);
}

#[test]
fn attestation_digest_is_blake3_of_public_key() {
    let id = Identity::generate().unwrap();
    assert_eq!(
        id.attestation_digest(),
        *blake3::hash(id.peer_id().as_bytes()).as_bytes()
    );
}

/// The PKCS#8 copies of the identity key that leave `Identity` (for rustls and rcgen, and the
/// one an issued certificate keeps) are wiped when dropped: their types guarantee it, and
/// wiping one leaves no key byte behind.
#[test]
fn pkcs8_copies_are_wiped_on_drop() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
    let id = Identity::generate().unwrap();
    let mut key = id.private_key_der().unwrap();
    wiped_on_drop(&key);
    let now = 1_700_000_000;
    let issued = crate::evidence::issue_certificate(&id, now, now + 600, None).unwrap();
    wiped_on_drop(&issued.key_der);
    // What a drop does: the secret DER is gone.
    assert!(!key.secret_der().is_empty());
    zeroize::Zeroize::zeroize(&mut *key);
    assert!(key.secret_der().iter().all(|b| *b == 0));
}
