//! Where signatures and attestations are stored, as artifacts ready to push: what cosign v3
//! writes and verifies by default (a Sigstore bundle v0.3 holding the DSSE envelope, in an OCI
//! 1.1 referrer of the image: empty config, the bundle as the one layer, `subject` naming
//! the image), and the older tag form (`sha256-<hex>.sig` and `.att`) that cosign 2 and
//! earlier read. Values only; pushing them is `crate::publish`'s.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};

use super::Signer;
use super::dsse::Envelope;
use crate::digest::Digest;
use crate::image::manifest::{self, Descriptor, Manifest, OCI_CONFIG, OCI_MANIFEST};

pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

/// A manifest and the blobs it names, to push by digest into the subject's repository. With
/// `tag`, it is the legacy form and goes up under that tag instead of as a referrer.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub artifact_type: String,
    pub manifest: Bytes,
    pub blobs: Vec<(Descriptor, Bytes)>,
    pub tag: Option<String>,
    /// What the run says once it is in place, e.g. `signature` or `SLSA provenance`.
    pub what: &'static str,
}

impl Attachment {
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }
}

/// The Sigstore bundle of an envelope signed with a key (no transparency log entry).
pub fn bundle_json(envelope: &Envelope, material: Value) -> Bytes {
    let bundle = json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": material,
        "dsseEnvelope": envelope,
    });
    Bytes::from(serde_json::to_vec(&bundle).expect("a JSON value serialises"))
}

/// The bundle as an OCI 1.1 referrer of `subject`, as `cosign sign` and `cosign attest` push it.
pub fn referrer(bundle: Bytes, predicate_type: &str, subject: &Descriptor, what: &'static str) -> Attachment {
    let empty = Bytes::from_static(b"{}");
    let mut config = Descriptor::new(OCI_EMPTY, Digest::of(&empty), empty.len() as u64);
    config.artifact_type = Some(BUNDLE_V03.to_string());
    let layer = Descriptor::new(BUNDLE_V03, Digest::of(&bundle), bundle.len() as u64);
    let annotations = BTreeMap::from([
        ("dev.sigstore.bundle.content".to_string(), "dsse-envelope".to_string()),
        ("dev.sigstore.bundle.predicateType".to_string(), predicate_type.to_string()),
    ]);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: Some(BUNDLE_V03.to_string()),
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: Some(subject.clone()),
        annotations: Some(annotations),
    };
    Attachment {
        artifact_type: BUNDLE_V03.to_string(),
        manifest: Bytes::from(manifest::to_bytes(&manifest)),
        blobs: vec![(config, empty), (layer, bundle)],
        tag: None,
        what,
    }
}

/// The simple-signing payload the legacy `.sig` form signs.
pub fn simple_signing_payload(repository: &str, subject: &Digest) -> Bytes {
    let payload = json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": subject.as_str() },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    Bytes::from(serde_json::to_vec(&payload).expect("a JSON value serialises"))
}

/// The legacy signature: the tag `sha256-<hex>.sig`, one simple-signing layer whose
/// annotation holds the base64 signature.
pub fn legacy_signature(subject: &Digest, payload: Bytes, signature_b64: String) -> Attachment {
    let annotations = BTreeMap::from([("dev.cosignproject.cosign/signature".to_string(), signature_b64)]);
    legacy(subject, "sig", vec![(SIMPLE_SIGNING, payload, annotations)], "legacy signature")
}

/// The legacy attestations: the tag `sha256-<hex>.att`, one DSSE envelope layer each.
pub fn legacy_attestations(subject: &Digest, envelopes: &[(&str, &Envelope)]) -> Attachment {
    let layers = envelopes
        .iter()
        .map(|(predicate_type, envelope)| {
            let body = Bytes::from(serde_json::to_vec(envelope).expect("an envelope serialises"));
            // cosign reads every layer's signature annotation; an envelope carries its own.
            let annotations = BTreeMap::from([
                ("dev.cosignproject.cosign/signature".to_string(), String::new()),
                ("predicateType".to_string(), predicate_type.to_string()),
            ]);
            (DSSE_ENVELOPE, body, annotations)
        })
        .collect();
    legacy(subject, "att", layers, "legacy attestations")
}

type Layer = (&'static str, Bytes, BTreeMap<String, String>);

fn legacy(subject: &Digest, suffix: &str, layers: Vec<Layer>, what: &'static str) -> Attachment {
    let mut blobs = Vec::new();
    let mut descriptors = Vec::new();
    for (media_type, body, annotations) in layers {
        let mut d = Descriptor::new(media_type, Digest::of(&body), body.len() as u64);
        d.annotations = Some(annotations);
        descriptors.push(d.clone());
        blobs.push((d, body));
    }
    let (config, manifest) = legacy_manifest(descriptors);
    blobs.insert(0, config);
    Attachment {
        artifact_type: OCI_MANIFEST.to_string(),
        manifest,
        blobs,
        tag: Some(format!("{}.{suffix}", subject.as_tag())),
        what,
    }
}

/// The config (with its bytes) and the manifest of a legacy `.sig`/`.att` image of `layers`.
fn legacy_manifest(layers: Vec<Descriptor>) -> ((Descriptor, Bytes), Bytes) {
    let diff_ids: Vec<&str> = layers.iter().map(|d| d.digest.as_str()).collect();
    let config_bytes = Bytes::from(manifest::to_bytes(&json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })));
    let config = Descriptor::new(OCI_CONFIG, Digest::of(&config_bytes), config_bytes.len() as u64);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config.clone(),
        layers,
        subject: None,
        annotations: None,
    };
    ((config, config_bytes), Bytes::from(manifest::to_bytes(&manifest)))
}

/// A legacy attachment added to what its tag already holds, as cosign adds to it: the layers
/// there (other signers' signatures and attestations) stay first, in their order, then ours.
/// An existing layer that is one of ours, or that `replaced` says ours replace (this key's
/// earlier signature of the same payload), is dropped. The existing layers' blobs are in the
/// repository already, so the attachment's blobs are still only ours and the new config.
pub fn onto_existing(ours: Attachment, existing: &Manifest, replaced: impl Fn(&Descriptor) -> bool) -> Attachment {
    let Ok(mine) = serde_json::from_slice::<Manifest>(&ours.manifest) else { return ours };
    let same = |a: &Descriptor, b: &Descriptor| a.digest == b.digest && a.annotations == b.annotations;
    let mut layers: Vec<Descriptor> =
        existing.layers.iter().filter(|d| !replaced(d) && !mine.layers.iter().any(|m| same(m, d))).cloned().collect();
    if layers.is_empty() {
        return ours;
    }
    layers.extend(mine.layers);
    let (config, manifest) = legacy_manifest(layers);
    let mut blobs: Vec<(Descriptor, Bytes)> =
        ours.blobs.into_iter().filter(|(d, _)| d.media_type != OCI_CONFIG).collect();
    blobs.insert(0, config);
    Attachment { manifest, blobs, ..ours }
}

/// What an attestation claims, to tell whether one is there already: its predicate type and
/// its statement, except that for SLSA provenance only what was built and how counts (the
/// subject and `buildDefinition`), not when the build ran.
pub type Claim = (String, String);

fn claim(statement: &Value) -> Option<Claim> {
    let predicate_type = statement["predicateType"].as_str()?.to_string();
    let what = if predicate_type == super::statement::SLSA_PROVENANCE_V1 {
        json!([statement["subject"], statement["predicate"]["buildDefinition"]])
    } else {
        statement.clone()
    };
    Some((predicate_type, what.to_string()))
}

/// The envelope of a bundle and its decoded statement payload.
fn envelope_of(bundle: &Value) -> Option<(&Value, Vec<u8>)> {
    use base64::Engine as _;
    let envelope = &bundle["dsseEnvelope"];
    let payload = base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str()?).ok()?;
    Some((envelope, payload))
}

/// The claim of an attachment this run made (its bundle is the second blob).
pub fn claim_of(attachment: &Attachment) -> Option<Claim> {
    let (_, bytes) = attachment.blobs.iter().find(|(d, _)| d.media_type == BUNDLE_V03)?;
    let bundle = serde_json::from_slice::<Value>(bytes).ok()?;
    let (_, payload) = envelope_of(&bundle)?;
    claim(&serde_json::from_slice(&payload).ok()?)
}

/// The claim of `bundle` (a referrer's one layer), when it is `signer`'s and about `subject`:
/// the same verification material, the subject's digest in the statement, and an envelope
/// signature this key verifies.
pub fn signed_claim(bundle: &[u8], signer: &dyn Signer, subject: &Digest) -> Option<Claim> {
    use base64::Engine as _;
    let bundle = serde_json::from_slice::<Value>(bundle).ok()?;
    if bundle["verificationMaterial"] != signer.verification_material() {
        return None;
    }
    let (envelope, payload) = envelope_of(&bundle)?;
    let statement = serde_json::from_slice::<Value>(&payload).ok()?;
    let subjects = statement["subject"].as_array()?;
    if !subjects.iter().any(|s| s["digest"]["sha256"].as_str() == Some(subject.hex())) {
        return None;
    }
    let message = super::dsse::pae(envelope["payloadType"].as_str()?, &payload);
    let b64 = |v: &Value| v.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    let signatures = envelope["signatures"].as_array()?;
    if !signatures.iter().filter_map(|s| b64(&s["sig"])).any(|sig| signer.verifies(&message, &sig)) {
        return None;
    }
    claim(&statement)
}

/// The base64 signature a legacy `.sig` layer carries in its annotation, decoded.
pub fn legacy_signature_of(layer: &Descriptor) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let value = layer.annotations.as_ref()?.get("dev.cosignproject.cosign/signature")?;
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_has_an_empty_config_the_bundle_as_layer_and_the_subject() {
        let subject = Descriptor::new(OCI_MANIFEST, Digest::of(b"image"), 5);
        let a = referrer(Bytes::from_static(b"{\"b\":1}"), "https://slsa.dev/provenance/v1", &subject, "x");
        let m: Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m["artifactType"], BUNDLE_V03);
        assert_eq!(m["config"]["mediaType"], OCI_EMPTY);
        assert_eq!(m["layers"][0]["mediaType"], BUNDLE_V03);
        assert_eq!(m["subject"]["digest"], subject.digest.as_str());
        assert_eq!(m["annotations"]["dev.sigstore.bundle.predicateType"], "https://slsa.dev/provenance/v1");
        assert_eq!(a.blobs.len(), 2);
        assert!(a.tag.is_none());
    }

    #[test]
    fn a_bundle_is_found_to_be_this_keys_for_this_subject_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cosign.key");
        std::fs::write(&path, include_str!("testdata/cosign.key")).unwrap();
        let signer = super::super::key::KeySigner::load(&path, Some("pw")).unwrap();
        let (subject, other) = (Digest::of(b"image"), Digest::of(b"other"));
        let provenance = |started: &str, go: &str| json!({"buildDefinition": {"goVersion": go}, "runDetails": {"metadata": {"startedOn": started}}});
        let bundle_of = |predicate: Value| {
            let payload = super::super::statement::statement(
                None,
                &subject,
                super::super::statement::SLSA_PROVENANCE_V1,
                predicate,
            );
            let envelope = super::super::dsse::sign(&signer, super::super::dsse::IN_TOTO, &payload).unwrap();
            (envelope.clone(), bundle_json(&envelope, signer.verification_material()))
        };
        let (envelope, bundle) = bundle_of(provenance("monday", "go1.26"));
        let found = signed_claim(&bundle, &signer, &subject).unwrap();
        assert_eq!(found.0, "https://slsa.dev/provenance/v1");
        // Another run of the same build is the same claim; another Go is not.
        let again = referrer(
            bundle_of(provenance("tuesday", "go1.26")).1,
            &found.0,
            &Descriptor::new("m", subject.clone(), 1),
            "p",
        );
        assert_eq!(claim_of(&again), Some(found.clone()));
        let other_go = referrer(
            bundle_of(provenance("monday", "go1.27")).1,
            &found.0,
            &Descriptor::new("m", subject.clone(), 1),
            "p",
        );
        assert_ne!(claim_of(&other_go), Some(found));
        assert_eq!(signed_claim(&bundle, &signer, &other), None, "about another image");
        let hinted = bundle_json(&envelope, json!({"publicKey": {"hint": "another key"}}));
        assert_eq!(signed_claim(&hinted, &signer, &subject), None, "another key's material");
        let mut forged = envelope.clone();
        forged.signatures[0].sig = "bm90IGEgc2lnbmF0dXJl".into();
        let forged = bundle_json(&forged, signer.verification_material());
        assert_eq!(signed_claim(&forged, &signer, &subject), None, "a signature the key does not verify");
        assert_eq!(signed_claim(b"not json", &signer, &subject), None);
    }

    #[test]
    fn legacy_forms_use_cosigns_tags() {
        let subject = Digest::of(b"image");
        let sig = legacy_signature(&subject, simple_signing_payload("r/x", &subject), "c2ln".into());
        assert_eq!(sig.tag.unwrap(), format!("sha256-{}.sig", subject.hex()));
        let m: Value = serde_json::from_slice(&sig.manifest).unwrap();
        assert_eq!(m["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"], "c2ln");
    }

    #[test]
    fn a_legacy_tag_keeps_what_other_signers_put_there() {
        let subject = Digest::of(b"image");
        let payload = simple_signing_payload("r/x", &subject);
        let theirs = legacy_signature(&subject, payload.clone(), "dGhlaXJz".into());
        let existing: Manifest = serde_json::from_slice(&theirs.manifest).unwrap();
        let ours = legacy_signature(&subject, payload.clone(), "b3Vycw==".into());

        let merged = onto_existing(ours.clone(), &existing, |_| false);
        let m: Manifest = serde_json::from_slice(&merged.manifest).unwrap();
        let signatures: Vec<_> = m.layers.iter().map(|d| legacy_signature_of(d).unwrap()).collect();
        assert_eq!(signatures, [b"theirs".to_vec(), b"ours".to_vec()]);
        let config: Value = serde_json::from_slice(&merged.blobs[0].1).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(merged.blobs[0].0, m.config);
        assert_eq!(merged.blobs.len(), 2, "the existing layer's blob is not pushed again");
        assert_eq!(merged.tag, ours.tag);

        // This key's earlier signature is replaced, and the very same layer is not doubled.
        let replaced = onto_existing(ours.clone(), &existing, |d| legacy_signature_of(d).unwrap() == b"theirs");
        assert_eq!(replaced.manifest, ours.manifest);
        let again: Manifest = serde_json::from_slice(&ours.manifest).unwrap();
        assert_eq!(onto_existing(ours.clone(), &again, |_| false).manifest, ours.manifest);
    }
}
