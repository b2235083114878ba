//! SPDX 2.3 JSON as ko writes it: the image package (`CONTAINER`) described by the document,
//! `DESCENDANT_OF` its base, `CONTAINS` the main module, which `DEPENDS_ON` each dependency
//! (with the SHA-256 from its `h1:` sum). An index document is `VARIANT_OF` each image, as ko writes it.

use serde_json::{Value, json};

use super::{
    BaseRef, ImageFacts, IndexFacts, base_purl, go_purl, module_download, oci_purl, platform_qualifiers, timestamp,
    to_json, tool_version,
};
use crate::digest::Digest;

const NOASSERTION: &str = "NOASSERTION";

/// An SPDX identifier: `SPDXRef-` and only the characters the spec allows. ko writes the raw
/// module version (`(devel)`), which validators reject; those characters become `-` here.
fn spdx_id(text: &str) -> String {
    let clean: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    format!("SPDXRef-Package-{clean}")
}

fn digest_id(digest: &Digest) -> String {
    spdx_id(&digest.as_str().replace(':', "-"))
}

fn module_id(path: &str, version: &str) -> String {
    spdx_id(&format!("{}-{version}", path.replace('/', ".")))
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

fn purl_ref(locator: String) -> Value {
    json!([{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": locator }])
}

fn sha256(hex: &str) -> Value {
    json!([{ "algorithm": "SHA256", "checksumValue": hex }])
}

fn package(id: &str, name: &str, version: &str, download: &str) -> serde_json::Map<String, Value> {
    let value = json!({
        "SPDXID": id,
        "name": name,
        "versionInfo": version,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "downloadLocation": download,
        "copyrightText": NOASSERTION,
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object"),
    }
}

fn document(digest: &Digest, created: Option<&str>, root: &str, packages: Vec<Value>, rels: Vec<Value>) -> Vec<u8> {
    to_json(&json!({
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("sbom-{digest}"),
        "spdxVersion": "SPDX-2.3",
        "creationInfo": {
            "created": timestamp(created),
            "creators": [format!("Tool: kubectl-ko-{}", tool_version())],
        },
        "dataLicense": "CC0-1.0",
        "documentNamespace": format!("http://spdx.org/spdxdocs/ko/{digest}"),
        "documentDescribes": [root],
        "packages": packages,
        "relationships": rels,
    }))
}

fn base_package(base: &BaseRef) -> Value {
    let id = digest_id(&base.digest);
    let mut p = package(&id, &base.name, &base.name, NOASSERTION);
    p.insert("checksums".into(), sha256(base.digest.hex()));
    p.insert("externalRefs".into(), purl_ref(base_purl(base)));
    Value::Object(p)
}

pub fn image(facts: &ImageFacts) -> Vec<u8> {
    let image_id = digest_id(facts.digest);
    let mut packages = vec![];
    let mut rels = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", &image_id)];

    let mut img = package(&image_id, facts.digest.as_str(), facts.digest.as_str(), NOASSERTION);
    img.insert("primaryPackagePurpose".into(), json!("CONTAINER"));
    img.insert("checksums".into(), sha256(facts.digest.hex()));
    img.insert("externalRefs".into(), purl_ref(oci_purl("image", facts.digest, &[("mediaType", facts.media_type)])));
    packages.push(Value::Object(img));

    if let Some(base) = &facts.base {
        packages.push(base_package(base));
        rels.push(relationship(&image_id, "DESCENDANT_OF", &digest_id(&base.digest)));
    }

    let info = facts.build_info;
    if let Some(main) = &info.main {
        let main_id = module_id(&main.path, &main.version);
        let mut p = package(&main_id, &main.path, &main.version, &format!("https://{}", main.path));
        p.insert("externalRefs".into(), purl_ref(go_purl(&main.path, &main.version)));
        packages.push(Value::Object(p));
        rels.push(relationship(&image_id, "CONTAINS", &main_id));

        // Identifiers made of cleaned names can meet (`lib_x` and `lib-x`, `a.b` and `a/b`);
        // SPDX wants them unique, so a later one that meets an earlier gets a hash of its own.
        let mut ids = std::collections::HashSet::from([image_id.clone(), main_id.clone()]);
        for dep in &info.deps {
            let m = dep.effective();
            let mut id = module_id(&m.path, &m.version);
            if !ids.insert(id.clone()) {
                let hash = Digest::of(format!("{}@{}", m.path, m.version).as_bytes());
                id = format!("{id}-{}", &hash.hex()[..12]);
                ids.insert(id.clone());
            }
            let download = module_download(&m.path, &m.version);
            let mut p = package(&id, &m.path, &m.version, &download);
            if let Some(hex) = m.sha256_hex() {
                p.insert("checksums".into(), sha256(&hex));
            }
            p.insert("externalRefs".into(), purl_ref(go_purl(&m.path, &m.version)));
            packages.push(Value::Object(p));
            rels.push(relationship(&main_id, "DEPENDS_ON", &id));
        }
    }
    document(facts.digest, facts.created, &image_id, packages, rels)
}

pub fn index(facts: &IndexFacts) -> Vec<u8> {
    let index_id = digest_id(facts.digest);
    let mut packages = vec![];
    let mut rels = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", &index_id)];

    let mut idx = package(&index_id, facts.digest.as_str(), facts.digest.as_str(), NOASSERTION);
    idx.insert("primaryPackagePurpose".into(), json!("CONTAINER"));
    idx.insert("checksums".into(), sha256(facts.digest.hex()));
    idx.insert("externalRefs".into(), purl_ref(oci_purl("index", facts.digest, &[("mediaType", facts.media_type)])));
    packages.push(Value::Object(idx));

    if let Some(base) = &facts.base {
        packages.push(base_package(base));
        rels.push(relationship(&index_id, "DESCENDANT_OF", &digest_id(&base.digest)));
    }
    for (digest, media_type, platform) in &facts.images {
        let id = digest_id(digest);
        let mut p = package(&id, digest.as_str(), &platform.to_string(), NOASSERTION);
        p.insert("primaryPackagePurpose".into(), json!("CONTAINER"));
        p.insert("checksums".into(), sha256(digest.hex()));
        let quals = platform_qualifiers(platform);
        let mut pairs: Vec<(&str, &str)> = quals.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("mediaType", media_type));
        p.insert("externalRefs".into(), purl_ref(oci_purl("image", digest, &pairs)));
        packages.push(Value::Object(p));
        rels.push(relationship(&index_id, "VARIANT_OF", &id));
    }
    document(facts.digest, facts.created, &index_id, packages, rels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::buildinfo;

    #[test]
    fn image_document_has_ko_shape_and_valid_ids() {
        let info = buildinfo::parse(
            "x: go1.22\n\tpath\texample.com/app\n\tmod\texample.com/app\t(devel)\t\n\tdep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n",
        );
        let digest = Digest::of(b"image");
        let base = BaseRef { name: "r.io/base:v1".into(), digest: Digest::of(b"base") };
        let facts = ImageFacts {
            digest: &digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            created: Some("2024-01-02T03:04:05Z"),
            base: Some(base),
            build_info: &info,
        };
        let bytes = image(&facts);
        assert_eq!(bytes, image(&facts), "deterministic");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["name"], format!("sbom-{digest}"));
        assert_eq!(doc["documentNamespace"], format!("http://spdx.org/spdxdocs/ko/{digest}"));
        assert_eq!(doc["creationInfo"]["created"], "2024-01-02T03:04:05Z");
        let packages = doc["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 4);
        assert_eq!(packages[2]["SPDXID"], "SPDXRef-Package-example.com.app--devel-");
        assert_eq!(packages[3]["downloadLocation"], "https://proxy.golang.org/github.com/google/uuid/@v/v1.6.0.zip");
        let kinds: Vec<&str> =
            doc["relationships"].as_array().unwrap().iter().map(|r| r["relationshipType"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["DESCRIBES", "DESCENDANT_OF", "CONTAINS", "DEPENDS_ON"]);
    }

    #[test]
    fn identifiers_that_meet_once_cleaned_are_kept_apart() {
        let info = buildinfo::parse(
            "x: go1.22\n\tpath\texample.com/app\n\tmod\texample.com/app\t(devel)\t\n\tdep\texample.com/lib_x\tv0.0.0\t\n\tdep\texample.com/lib-x\tv0.0.0\t\n",
        );
        let digest = Digest::of(b"image");
        let facts = ImageFacts { digest: &digest, media_type: "m", created: None, base: None, build_info: &info };
        let doc: Value = serde_json::from_slice(&image(&facts)).unwrap();
        let ids: Vec<&str> =
            doc["packages"].as_array().unwrap().iter().map(|p| p["SPDXID"].as_str().unwrap()).collect();
        let unique: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(ids[2], "SPDXRef-Package-example.com.lib-x-v0.0.0", "the first keeps ko's form");
        let related: Vec<&str> = doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["relatedSpdxElement"].as_str().unwrap())
            .collect();
        assert!(related.contains(&ids[3]), "the relationship names the kept-apart id: {related:?}");
    }
}
