//! Catalog images: what an upload is, found by decoding it (JPEG, PNG, GIF or WebP; a file
//! with another name or other bytes is refused), and the PNG of at most 512×512 that is kept,
//! its aspect ratio kept, named by the SHA-256 of what was uploaded (the same upload is stored
//! once).

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};
use sha2::{Digest as _, Sha256};

/// The most an upload may hold.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;
/// The longest side of a stored image.
pub const MAX_SIDE: u32 = 512;
/// The largest picture decoded, each side: bigger ones are refused before their pixels are
/// allocated.
const MAX_DECODED_SIDE: u32 = 12_000;

/// An image as it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Hex SHA-256 of the uploaded bytes.
    pub sha256: String,
}

/// Why an upload is not an image Kassa keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the file is not a JPEG, PNG, GIF or WebP image")]
    NotAnImage,
    #[error("the image could not be read: {0}")]
    Corrupt(String),
    #[error("the image is larger than {MAX_DECODED_SIDE}×{MAX_DECODED_SIDE} pixels")]
    TooManyPixels,
}

/// Decodes `upload`, shrinks it to fit [`MAX_SIDE`] (never enlarges), and encodes it as PNG.
/// CPU work: run it off the async threads.
pub fn normalize(upload: &[u8]) -> Result<StoredImage, ImageError> {
    let reader = ImageReader::new(Cursor::new(upload))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP) => {}
        _ => return Err(ImageError::NotAnImage),
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooManyPixels,
        other => ImageError::Corrupt(other.to_string()),
    })?;
    let fitted = if decoded.width() > MAX_SIDE || decoded.height() > MAX_SIDE {
        decoded.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle)
    } else {
        decoded
    };
    let mut png = Vec::new();
    fitted
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    Ok(StoredImage {
        png,
        width: fitted.width(),
        height: fitted.height(),
        sha256: hex::encode(Sha256::digest(upload)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(picture)
            .write_to(&mut Cursor::new(&mut out), format)
            .expect("encodes");
        out
    }

    #[test]
    fn a_large_image_is_shrunk_to_fit_keeping_its_shape() {
        let stored = normalize(&encoded(1024, 256, ImageFormat::Png)).expect("an image");
        assert_eq!((stored.width, stored.height), (512, 128));
        let back = image::load_from_memory(&stored.png).expect("PNG");
        assert_eq!((back.width(), back.height()), (512, 128));
        let small = normalize(&encoded(40, 30, ImageFormat::Jpeg)).expect("an image");
        assert_eq!((small.width, small.height), (40, 30), "never enlarged");
        assert_eq!(
            image::guess_format(&small.png).expect("known"),
            ImageFormat::Png
        );
    }

    #[test]
    fn text_and_broken_images_are_refused() {
        assert_eq!(normalize(b"just some text"), Err(ImageError::NotAnImage));
        let mut broken = encoded(64, 64, ImageFormat::Png);
        broken.truncate(60);
        assert!(matches!(normalize(&broken), Err(ImageError::Corrupt(_))));
        let same = encoded(8, 8, ImageFormat::Gif);
        assert_eq!(
            normalize(&same).expect("gif").sha256,
            normalize(&same).expect("gif").sha256
        );
    }
}
