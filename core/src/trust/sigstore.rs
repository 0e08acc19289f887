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

    // A key and signature made by cosign's format with Python's
    // cryptography (tests/sigstore-sign.py), over this payload.
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
