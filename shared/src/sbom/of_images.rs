//! SBOMs of the images and indexes the builder makes, with the facts read from them (the
//! config's creation time dates the document as ko dates it).

use super::{BaseRef, Sbom, SbomFormat};
use crate::image::{Image, IndexImage};

/// An SBOM as the image model holds it.
pub fn attached(doc: Sbom) -> crate::image::Sbom {
    crate::image::Sbom { media_type: doc.media_type(), bytes: doc.bytes }
}

/// The config's `created`, which dates the SBOM as ko dates it.
fn created_of(image: &Image) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes).ok()?;
    config["created"].as_str().map(str::to_string)
}

/// The SBOM of one platform image, from its binary's Go build info.
pub fn for_image(format: SbomFormat, image: &Image, base: BaseRef, info: &super::BuildInfo) -> Sbom {
    super::for_image(
        format,
        &super::ImageFacts {
            digest: &image.digest,
            media_type: &image.media_type,
            created: created_of(image).as_deref(),
            base: Some(base),
            build_info: info,
        },
    )
}

/// The SBOM of an index, from its images.
pub fn for_index(format: SbomFormat, index: &IndexImage, base: Option<BaseRef>) -> Sbom {
    let created = index.images.first().and_then(created_of);
    let images = index.images.iter().map(|i| (&i.digest, i.media_type.as_str(), &i.platform)).collect();
    super::for_index(
        format,
        &super::IndexFacts {
            digest: &index.digest,
            media_type: &index.media_type,
            created: created.as_deref(),
            base,
            images,
        },
    )
}
