//! "Simple signing" (containers-signature(5)): an OpenPGP signed message
//! whose literal data is a JSON payload naming the manifest digest and the
//! Docker reference. The OpenPGP part is rpgp's (`pgp`); this file only
//! loads the keys, asks rpgp to verify, and reads the payload strictly.

use std::io::BufReader;

use pgp::composed::{Deserializable, Message, SignedPublicKey};
use pgp::types::KeyDetails;
use serde::Deserialize;

/// The payload type every simple signature carries.
pub const SIGNATURE_TYPE: &str = "atomic container signature";

/// The largest signature read.
pub const MAX_SIGNATURE_SIZE: u64 = 4 << 20;

/// Public keys of one `signedBy` requirement.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    /// For messages: the files or "keyData".
    pub from: String,
}

/// Parse armored or binary OpenPGP public keys (one or more per source).
pub fn load_keys(sources: &[(String, Vec<u8>)]) -> Result<Keyring, String> {
    let mut keys = Vec::new();
    for (name, data) in sources {
        let it = SignedPublicKey::from_reader_many(BufReader::new(&data[..]))
            .map_err(|e| format!("{name}: not an OpenPGP public key: {e}"))?
            .0;
        let before = keys.len();
        for k in it {
            keys.push(k.map_err(|e| format!("{name}: not an OpenPGP public key: {e}"))?);
        }
        if keys.len() == before {
            return Err(format!("{name}: no OpenPGP public key in it"));
        }
    }
    let from = sources
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Keyring { keys, from })
}

/// The critical part of a payload, read strictly (`signature/simple.go`,
/// `signature/internal/sigstore_payload.go`): both have this shape, with
/// their own `critical.type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    critical: Critical,
    #[allow(dead_code)]
    optional: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: PayloadImage,
    identity: PayloadIdentity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

/// Parse a verified payload whose `critical.type` must be `kind`:
/// (manifest digest, docker reference). `signer` is for messages.
pub(super) fn parse_payload(
    data: &[u8],
    kind: &str,
    signer: &str,
) -> Result<(String, String), String> {
    let p: Payload = serde_json::from_slice(data)
        .map_err(|e| format!("signed by {signer}, but the payload is invalid: {e}"))?;
    if p.critical.kind != kind {
        return Err(format!(
            "signed by {signer}, but critical.type is '{}', not '{kind}'",
            p.critical.kind
        ));
    }
    Ok((
        p.critical.image.docker_manifest_digest,
        p.critical.identity.docker_reference,
    ))
}

/// What a verified signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest_digest: String,
    pub docker_reference: String,
    /// The fingerprint of the (sub)key that made it, hex.
    pub signer: String,
}

/// Verify `sig` against `ring` and parse its payload. Only a signature one
/// of the keys made yields the payload: nothing of an unverified message
/// is trusted.
pub fn verify(sig: &[u8], ring: &Keyring) -> Result<Verified, String> {
    let msg = Message::from_bytes(BufReader::new(sig))
        .map_err(|e| format!("not an OpenPGP message: {e}"))?;
    let mut msg = msg
        .decompress()
        .map_err(|e| format!("cannot decompress the OpenPGP message: {e}"))?;
    if !msg.is_signed() {
        return Err("the OpenPGP message is not signed".into());
    }
    let data = msg
        .as_data_vec()
        .map_err(|e| format!("cannot read the OpenPGP message: {e}"))?;
    let mut signer = None;
    'keys: for k in &ring.keys {
        if msg.verify(k).is_ok() {
            signer = Some(hex::encode(k.fingerprint().as_bytes()));
            break;
        }
        for s in &k.public_subkeys {
            if msg.verify(s).is_ok() {
                signer = Some(hex::encode(s.fingerprint().as_bytes()));
                break 'keys;
            }
        }
    }
    let Some(signer) = signer else {
        return Err(format!("not signed by any key of {}", ring.from));
    };
    let (manifest_digest, docker_reference) = parse_payload(&data, SIGNATURE_TYPE, &signer)?;
    Ok(Verified {
        manifest_digest,
        docker_reference,
        signer,
    })
}
