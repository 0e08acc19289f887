//! `sigstoreSigned` with public keys: cosign's signatures as skopeo and
//! containers/image attach them (`signature/internal/sigstore_payload.go`,
//! `signature/policy_eval_sigstore.go`). A signature is one layer of the
//! OCI manifest tagged `sha256-<hex>.sig` next to the image (see
//! [`crate::source::SigstoreAttachment`]): its payload is the signed JSON,
//! and the annotation `dev.cosignproject.cosign/signature` holds the
//! base64 of an ASN.1 DER ECDSA signature over the payload's SHA-256.
//!
//! Keys are PEM `PUBLIC KEY` (SubjectPublicKeyInfo) ECDSA P-256 keys, the
//! kind `cosign generate-key-pair` and `skopeo generate-sigstore-key`
//! make; the cryptography is RustCrypto's `p256`. RSA and Ed25519 keys,
//! which containers/image also reads, are refused by name. Fulcio, Rekor
//! and `pki` (keyless) are refused when the policy is loaded.

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use crate::source::SigstoreAttachment;

/// The media type of a signature layer (other attachments are skipped).
pub const SIGNATURE_MIME: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation that holds the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The public keys of one `sigstoreSigned` requirement, each with where it
/// came from (for messages).
pub struct Keys {
    keys: Vec<(String, VerifyingKey)>,
    /// For messages: the files or "keyData".
    pub from: String,
}

/// Parse PEM public keys, one per source.
pub fn load_keys(sources: &[(String, Vec<u8>)]) -> Result<Keys, String> {
    let mut keys = Vec::new();
    for (name, data) in sources {
        let text = std::str::from_utf8(data)
            .map_err(|_| format!("{name}: not a PEM public key (not text)"))?;
        let k = VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| {
            format!(
                "{name}: not an ECDSA P-256 public key in PEM (the only kind supported; \
                 cosign and skopeo make these): {e}"
            )
        })?;
        keys.push((name.clone(), k));
    }
    if keys.is_empty() {
        return Err("no public key given".into());
    }
    let from = sources
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Keys { keys, from })
}

/// Verify one attachment against `keys` and parse its payload. Nothing of
/// the payload is read before a key verified it.
pub fn verify(a: &SigstoreAttachment, keys: &Keys) -> Result<super::simple::Verified, String> {
    let b64 = a
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("missing the {SIGNATURE_ANNOTATION} annotation"))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the {SIGNATURE_ANNOTATION} annotation is not base64: {e}"))?;
    let sig = Signature::from_der(&der)
        .map_err(|e| format!("not an ASN.1 DER ECDSA P-256 signature: {e}"))?;
    let signer = keys
        .keys
        .iter()
        .find(|(_, k)| k.verify(&a.payload, &sig).is_ok())
        .map(|(n, _)| n.clone())
        .ok_or_else(|| format!("not signed by any key of {}", keys.from))?;
    let (manifest_digest, docker_reference) =
        super::simple::parse_payload(&a.payload, SIGNATURE_TYPE, &signer)?;
    Ok(super::simple::Verified {
        manifest_digest,
        docker_reference,
        signer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A signature made by cosign itself, with its public key and another
    // one: containers/image's signature/fixtures (Apache-2.0),
    // dir-img-cosign-valid/signature-1, cosign.pub, cosign2.pub, at
    // df7e80d2d19872b61f352a8a182ec934dc0c2346.
    const COSIGN_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0
vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==
-----END PUBLIC KEY-----
";
    const COSIGN2_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwOkOF9xpfG8ghueIhnZ66ooujwt1
+ReV3HupgKnGFYnEh3Hh1YTg5L6kN1Yakkt5WltRoav8/R3hpCtUO3Rldw==
-----END PUBLIC KEY-----
";
    const COSIGN_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"192.168.64.2:5000/cosign-signed-single-sample"},"image":{"docker-manifest-digest":"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"},"type":"cosign container image signature"},"optional":null}"#;
    const COSIGN_SIG: &str = "MEYCIQDmtamqYPjMg81nqeBhptrPls44aA/r7PwLmspINJY4MwIhANKRpqe2E9UCBtGFdPoz/8jAbaQm4uP4h+IpwKTE6ClR";

    fn cosign_attachment(payload: &str) -> SigstoreAttachment {
        SigstoreAttachment {
            media_type: SIGNATURE_MIME.into(),
            payload: payload.as_bytes().to_vec(),
            annotations: [(SIGNATURE_ANNOTATION.to_string(), COSIGN_SIG.to_string())].into(),
        }
    }

    #[test]
    fn a_signature_made_by_cosign_verifies_and_says_what_it_signed() {
        let keys = load_keys(&[("cosign.pub".into(), COSIGN_PUB.as_bytes().to_vec())]).unwrap();
        let v = verify(&cosign_attachment(COSIGN_PAYLOAD), &keys).unwrap();
        assert_eq!(
            v.manifest_digest,
            "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
        );
        assert_eq!(
            v.docker_reference,
            "192.168.64.2:5000/cosign-signed-single-sample"
        );
        assert_eq!(v.signer, "cosign.pub");
        // Another key, or one byte of the payload changed: refused.
        let other = load_keys(&[("cosign2.pub".into(), COSIGN2_PUB.as_bytes().to_vec())]).unwrap();
        let e = verify(&cosign_attachment(COSIGN_PAYLOAD), &other).unwrap_err();
        assert!(e.contains("not signed by any key of cosign2.pub"), "{e}");
        let tampered = COSIGN_PAYLOAD.replace("a00\"", "a01\"");
        assert_ne!(tampered, COSIGN_PAYLOAD);
        let e = verify(&cosign_attachment(&tampered), &keys).unwrap_err();
        assert!(e.contains("not signed by any key"), "{e}");
    }

    // A P-256 public key made by tests/sigstore-keygen.py.
    const PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE29j8eQGKLbw75qArEhLpP1rqbqPt
e78CgMilYMnRp1TJ9f7HkeiWNQ3mxpF44C/89iVbmdNhxguPRMy6YyW0IQ==
-----END PUBLIC KEY-----
";

    #[test]
    fn keys_other_than_p256_are_refused_by_name() {
        let e = load_keys(&[("k.pub".into(), b"not a key".to_vec())])
            .err()
            .unwrap();
        assert!(e.contains("k.pub") && e.contains("P-256"), "{e}");
        assert!(load_keys(&[("k.pub".into(), PUB.as_bytes().to_vec())]).is_ok());
    }

    #[test]
    fn an_attachment_without_the_annotation_or_with_garbage_is_refused() {
        let keys = load_keys(&[("k.pub".into(), PUB.as_bytes().to_vec())]).unwrap();
        let mut a = SigstoreAttachment {
            media_type: SIGNATURE_MIME.into(),
            payload: b"{}".to_vec(),
            annotations: Default::default(),
        };
        assert!(verify(&a, &keys).unwrap_err().contains("missing"));
        a.annotations
            .insert(SIGNATURE_ANNOTATION.into(), "MEQCIA==".into());
        assert!(verify(&a, &keys).unwrap_err().contains("DER"));
    }
}
