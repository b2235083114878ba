//! CycloneDX 1.5 JSON (ko dropped CycloneDX; users asked for it back): the image is the
//! metadata component, its base an ancestor in its pedigree; the main module and every
//! dependency are components, linked in `dependencies`. An index lists its images.

use serde_json::{Value, json};

use super::{
    BaseRef, ImageFacts, IndexFacts, base_purl, go_purl, module_download, oci_purl, platform_qualifiers, timestamp,
    to_json, tool_version,
};
use crate::digest::Digest;

/// A stable `urn:uuid:` from the digest (a version-5-shaped UUID, so no randomness).
fn serial_number(digest: &Digest) -> String {
    let h = digest.hex();
    let variant = ['8', '9', 'a', 'b'][usize::from_str_radix(&h[16..17], 16).unwrap_or(0) % 4];
    format!("urn:uuid:{}-{}-5{}-{variant}{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn hashes(hex: &str) -> Value {
    json!([{ "alg": "SHA-256", "content": hex }])
}

fn container(purl: String, name: &str, digest: &Digest) -> serde_json::Map<String, Value> {
    match json!({
        "type": "container",
        "bom-ref": purl,
        "name": name,
        "version": digest.as_str(),
        "hashes": hashes(digest.hex()),
        "purl": purl,
    }) {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object"),
    }
}

fn with_base(mut component: serde_json::Map<String, Value>, base: &Option<BaseRef>) -> Value {
    if let Some(base) = base {
        component.insert(
            "pedigree".into(),
            json!({ "ancestors": [Value::Object(container(base_purl(base), &base.name, &base.digest))] }),
        );
    }
    Value::Object(component)
}

fn bom(digest: &Digest, created: Option<&str>, root: Value, components: Vec<Value>, deps: Vec<Value>) -> Vec<u8> {
    to_json(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial_number(digest),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(created),
            "tools": { "components": [{ "type": "application", "name": "kubectl-ko", "version": tool_version() }] },
            "component": root,
        },
        "components": components,
        "dependencies": deps,
    }))
}

pub fn image(facts: &ImageFacts) -> Vec<u8> {
    let image_ref = oci_purl("image", facts.digest, &[("mediaType", facts.media_type)]);
    let root = with_base(container(image_ref.clone(), facts.digest.as_str(), facts.digest), &facts.base);
    let mut components = vec![];
    let mut deps = vec![];
    if let Some(main) = &facts.build_info.main {
        let main_ref = go_purl(&main.path, &main.version);
        components.push(json!({
            "type": "application",
            "bom-ref": main_ref,
            "name": main.path,
            "version": main.version,
            "purl": main_ref,
        }));
        deps.push(json!({ "ref": image_ref, "dependsOn": [main_ref] }));
        let mut dep_refs = vec![];
        for dep in &facts.build_info.deps {
            let m = dep.effective();
            let purl = go_purl(&m.path, &m.version);
            let mut c = json!({
                "type": "library",
                "bom-ref": purl,
                "name": m.path,
                "version": m.version,
                "purl": purl,
                "externalReferences": [{
                    "type": "distribution",
                    "url": module_download(&m.path, &m.version),
                }],
            });
            if let Some(hex) = m.sha256_hex() {
                c["hashes"] = hashes(&hex);
            }
            components.push(c);
            dep_refs.push(purl);
        }
        deps.push(json!({ "ref": main_ref, "dependsOn": dep_refs }));
    }
    bom(facts.digest, facts.created, root, components, deps)
}

pub fn index(facts: &IndexFacts) -> Vec<u8> {
    let index_ref = oci_purl("index", facts.digest, &[("mediaType", facts.media_type)]);
    let root = with_base(container(index_ref.clone(), facts.digest.as_str(), facts.digest), &facts.base);
    let mut components = vec![];
    let mut refs = vec![];
    for (digest, media_type, platform) in &facts.images {
        let quals = platform_qualifiers(platform);
        let mut pairs: Vec<(&str, &str)> = quals.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("mediaType", media_type));
        let purl = oci_purl("image", digest, &pairs);
        let mut c = container(purl.clone(), digest.as_str(), digest);
        c.insert("properties".into(), json!([{ "name": "platform", "value": platform.to_string() }]));
        components.push(Value::Object(c));
        refs.push(purl);
    }
    let deps = vec![json!({ "ref": index_ref, "dependsOn": refs })];
    bom(facts.digest, facts.created, root, components, deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_bom_links_image_main_module_and_dependencies() {
        let info = crate::sbom::buildinfo::parse(
            "x: go1.22\n\tpath\texample.com/app\n\tmod\texample.com/app\t(devel)\t\n\tdep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n",
        );
        let digest = Digest::of(b"image");
        let facts = ImageFacts {
            digest: &digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            created: None,
            base: Some(BaseRef { name: "r.io/base:v1".into(), digest: Digest::of(b"base") }),
            build_info: &info,
        };
        let bom: Value = serde_json::from_slice(&image(&facts)).unwrap();
        let root = &bom["metadata"]["component"];
        assert_eq!(root["type"], "container");
        assert_eq!(root["pedigree"]["ancestors"][0]["name"], "r.io/base:v1");
        assert_eq!(bom["components"][1]["hashes"][0]["content"].as_str().unwrap().len(), 64);
        let deps = bom["dependencies"].as_array().unwrap();
        assert_eq!(deps[0]["ref"], root["bom-ref"]);
        assert_eq!(deps[0]["dependsOn"][0], bom["components"][0]["bom-ref"]);
        assert_eq!(deps[1]["dependsOn"][0], "pkg:golang/github.com/google/uuid@v1.6.0?type=module");
    }

    #[test]
    fn serial_numbers_are_stable_uuids() {
        let s = serial_number(&Digest::of(b"x"));
        assert_eq!(s, serial_number(&Digest::of(b"x")));
        let uuid = s.strip_prefix("urn:uuid:").unwrap();
        let parts: Vec<&str> = uuid.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('5') && "89ab".contains(&parts[3][..1]));
    }
}
