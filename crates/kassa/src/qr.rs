//! QR codes for payment links, so a shop can show a Kaspi payment URL on a screen.
//!
//! Owns only the rendering: the text is encoded by the `qrcode` crate at error correction
//! level M, and its module matrix is drawn here either as a standalone SVG document
//! ([`svg`], served as `image/svg+xml`) or as a 1-bit grayscale PNG written by the `png`
//! crate ([`png`]). Both draw black modules on white with the 4-module quiet zone that
//! scanners expect. Touches nothing else: no I/O, no database, no HTTP.

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code on every side, as the QR specification asks.
pub const QUIET_ZONE: usize = 4;

/// Largest PNG module size accepted; larger requests are clamped to it.
pub const MAX_MODULE_PX: u32 = 32;

/// Why a text could not be rendered as a QR code.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit even the largest QR code (version 40) at level M:
    /// at most 2,331 bytes of arbitrary text.
    #[error("text of {len} bytes is too long for a QR code")]
    TooLong {
        /// Length of the rejected text in bytes.
        len: usize,
    },
    /// The encoder refused the text for another reason; with automatic version
    /// selection this does not happen for any UTF-8 text.
    #[error("text cannot be encoded as a QR code")]
    Encode(#[source] qrcode::types::QrError),
    /// The PNG encoder failed; writing to memory with dimensions computed here
    /// does not fail, so this marks a bug.
    #[error("writing the QR code PNG failed")]
    Png(#[from] ::png::EncodingError),
}

/// Renders `text` as a standalone SVG document (`image/svg+xml`).
///
/// The image has a `viewBox` of one unit per module, quiet zone included, and no fixed
/// width or height, so it scales to whatever box the page gives it. Dark modules are
/// drawn as one `<path>` of horizontal runs over a white background.
pub fn svg(text: &str) -> Result<String, QrError> {
    let matrix = Matrix::encode(text)?;
    let size = matrix.size();
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !matrix.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < size && matrix.is_dark(x, y) {
                x += 1;
            }
            let run = x - start;
            // Writing to a String cannot fail.
            let _ = write!(path, "M{start} {y}h{run}v1h-{run}z");
        }
    }
    // Only numbers computed here go into the markup, so nothing needs escaping.
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" "#,
            r#"viewBox="0 0 {size} {size}" shape-rendering="crispEdges">"#,
            r##"<rect width="{size}" height="{size}" fill="#fff"/>"##,
            r##"<path fill="#000" d="{path}"/>"##,
            "</svg>\n"
        ),
        size = size,
        path = path
    ))
}

/// Renders `text` as a 1-bit grayscale PNG, each module `module_px` pixels square
/// (clamped to `1..=`[`MAX_MODULE_PX`]), quiet zone included.
pub fn png(text: &str, module_px: u32) -> Result<Vec<u8>, QrError> {
    let matrix = Matrix::encode(text)?;
    let module_px = module_px.clamp(1, MAX_MODULE_PX) as usize;
    let side = matrix.size() * module_px;
    // A row of 1-bit pixels, most significant bit first, 1 = white; padding bits stay white.
    let row_bytes = side.div_ceil(8);
    let mut pixels = Vec::with_capacity(row_bytes * side);
    for y in 0..matrix.size() {
        let mut row = vec![0xFF_u8; row_bytes];
        for x in 0..side {
            if matrix.is_dark(x / module_px, y) {
                row[x / 8] &= !(0x80 >> (x % 8));
            }
        }
        for _ in 0..module_px {
            pixels.extend_from_slice(&row);
        }
    }

    // The side is at most (177 + 2 * 4) * 32 pixels, far below u32::MAX.
    let side = side as u32;
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, side, side);
    encoder.set_color(::png::ColorType::Grayscale);
    encoder.set_depth(::png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// The encoded modules of one QR code, addressed with the quiet zone included.
struct Matrix {
    /// Modules per side of the code itself, without the quiet zone.
    width: usize,
    /// Row-major, `width * width` entries.
    colors: Vec<Color>,
}

impl Matrix {
    fn encode(text: &str) -> Result<Self, QrError> {
        let code = QrCode::with_error_correction_level(text, EcLevel::M).map_err(|e| match e {
            qrcode::types::QrError::DataTooLong => QrError::TooLong { len: text.len() },
            other => QrError::Encode(other),
        })?;
        Ok(Self {
            width: code.width(),
            colors: code.to_colors(),
        })
    }

    /// Modules per side of the image, quiet zone included.
    fn size(&self) -> usize {
        self.width + 2 * QUIET_ZONE
    }

    /// Whether the module at image coordinates (`x`, `y`) is dark; the quiet zone is light.
    fn is_dark(&self, x: usize, y: usize) -> bool {
        let inside = QUIET_ZONE..QUIET_ZONE + self.width;
        if !inside.contains(&x) || !inside.contains(&y) {
            return false;
        }
        let index = (y - QUIET_ZONE) * self.width + (x - QUIET_ZONE);
        self.colors[index] == Color::Dark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: &str = "https://pay.kaspi.kz/pay/55308082630746899169618031642188672381021";

    /// A 120-character payment URL.
    fn long_url() -> String {
        let prefix = "https://pay.kaspi.kz/pay/";
        let digits: String = (0..120 - prefix.len())
            .map(|i| char::from(b'0' + (i * 7 % 10) as u8))
            .collect();
        let url = format!("{prefix}{digits}");
        assert_eq!(url.len(), 120);
        url
    }

    /// Modules per side that the encoder chooses for `text`, plus the 4-module quiet
    /// zone on each side (spelled out, not [`QUIET_ZONE`], so a change to it is caught).
    fn expected_size(text: &str) -> usize {
        QrCode::with_error_correction_level(text, EcLevel::M)
            .unwrap()
            .width()
            + 2 * 4
    }

    /// Decodes a PNG into (width, height, 8-bit luminance pixels).
    fn read_png(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(::png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        assert_eq!(
            reader.info().color_type,
            ::png::ColorType::Grayscale,
            "written as grayscale"
        );
        assert_eq!(reader.info().bit_depth, ::png::BitDepth::One, "1-bit");
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            frame.color_type,
            ::png::ColorType::Grayscale,
            "expanded to 8-bit gray"
        );
        assert_eq!(frame.bit_depth, ::png::BitDepth::Eight);
        buf.truncate(frame.buffer_size());
        (frame.width as usize, frame.height as usize, buf)
    }

    /// Scans a luminance image and returns the one QR code found: (text, ecc level bits).
    fn scan(width: usize, height: usize, luma: &[u8]) -> (String, u16) {
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "exactly one QR code in the image");
        let (meta, content) = grids[0].decode().unwrap();
        (content, meta.ecc_level)
    }

    fn assert_png_round_trips(text: &str, module_px: u32) {
        let bytes = png(text, module_px).unwrap();
        let (width, height, luma) = read_png(&bytes);
        let side = expected_size(text) * module_px as usize;
        assert_eq!((width, height), (side, side));

        // The quiet zone is white all round; the finder pattern's corner right inside it is black.
        let border = 4 * module_px as usize;
        for i in 0..side {
            for j in 0..border {
                for (x, y) in [(i, j), (j, i), (i, side - 1 - j), (side - 1 - j, i)] {
                    assert_eq!(luma[y * width + x], 255, "quiet zone pixel ({x}, {y})");
                }
            }
        }
        assert_eq!(luma[border * width + border], 0, "top-left finder corner");

        let (content, ecc_level) = scan(width, height, &luma);
        assert_eq!(content, text);
        // Format bits 00 are level M (L = 01, Q = 11, H = 10).
        assert_eq!(ecc_level, 0, "error correction level M");
    }

    #[test]
    fn png_round_trips_short_url() {
        assert_png_round_trips(SHORT, 4);
    }

    #[test]
    fn png_round_trips_120_char_url() {
        assert_png_round_trips(&long_url(), 3);
    }

    #[test]
    fn png_clamps_module_size() {
        let modules = expected_size(SHORT);
        let (w, _, luma) = read_png(&png(SHORT, 0).unwrap());
        assert_eq!(w, modules, "0 is clamped to 1 pixel per module");
        let (content, _) = scan(w, w, &luma);
        assert_eq!(content, SHORT);
        let (w, _, _) = read_png(&png(SHORT, 1000).unwrap());
        assert_eq!(w, modules * MAX_MODULE_PX as usize);
    }

    /// Reads the dark modules back out of an SVG written by [`svg`] and draws them
    /// as pixels, `scale` per module.
    fn rasterize_svg(svg: &str, scale: usize) -> (usize, Vec<u8>) {
        let size: usize = svg
            .split_once(r#"viewBox="0 0 "#)
            .unwrap()
            .1
            .split_once(' ')
            .unwrap()
            .0
            .parse()
            .unwrap();
        let d = svg
            .split_once(r#" d=""#)
            .unwrap()
            .1
            .split_once('"')
            .unwrap()
            .0;
        let side = size * scale;
        let mut luma = vec![255_u8; side * side];
        for run in d.split('M').filter(|s| !s.is_empty()) {
            // Each run is "M{x} {y}h{n}v1h-{n}z".
            let (x, rest) = run.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let (n, rest) = rest.split_once('v').unwrap();
            assert_eq!(rest, format!("1h-{n}z"), "run {run:?}");
            let (x, y, n): (usize, usize, usize) =
                (x.parse().unwrap(), y.parse().unwrap(), n.parse().unwrap());
            assert!(x + n <= size && y < size, "run {run:?} inside the viewBox");
            for py in y * scale..(y + 1) * scale {
                for px in x * scale..(x + n) * scale {
                    luma[py * side + px] = 0;
                }
            }
        }
        (side, luma)
    }

    #[test]
    fn svg_is_a_scalable_single_path_document() {
        let doc = svg(SHORT).unwrap();
        assert!(doc.starts_with("<svg "), "{doc}");
        assert!(doc.trim_end().ends_with("</svg>"));
        assert!(doc.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
        let size = expected_size(SHORT);
        assert!(doc.contains(&format!(r#"viewBox="0 0 {size} {size}""#)));
        assert_eq!(doc.matches("<path ").count(), 1, "one path for all modules");
        assert_eq!(doc.matches('<').count(), doc.matches('>').count());
    }

    #[test]
    fn svg_scans_back_to_the_text() {
        for text in [SHORT.to_owned(), long_url()] {
            let (side, luma) = rasterize_svg(&svg(&text).unwrap(), 4);
            let (content, ecc_level) = scan(side, side, &luma);
            assert_eq!(content, text);
            assert_eq!(ecc_level, 0);
        }
    }

    #[test]
    fn svg_grows_with_the_text() {
        let short = svg(SHORT).unwrap();
        let long = svg(&long_url()).unwrap();
        assert!(expected_size(&long_url()) > expected_size(SHORT));
        assert!(
            long.len() > short.len(),
            "{} <= {}",
            long.len(),
            short.len()
        );
    }

    #[test]
    fn too_long_text_is_an_error() {
        let text = "x".repeat(5_000);
        assert!(matches!(svg(&text), Err(QrError::TooLong { len: 5_000 })));
        assert!(matches!(
            png(&text, 4),
            Err(QrError::TooLong { len: 5_000 })
        ));
        let err = svg(&text).unwrap_err().to_string();
        assert!(err.contains("5000 bytes"), "{err}");
    }

    #[test]
    fn limit_is_2331_bytes() {
        assert!(svg(&"x".repeat(2_331)).is_ok());
        assert!(matches!(
            svg(&"x".repeat(2_332)),
            Err(QrError::TooLong { len: 2_332 })
        ));
    }
}
