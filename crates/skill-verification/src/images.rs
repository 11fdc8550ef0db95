//! Images to embeddings: decode (PNG or JPEG, bounded), preprocess as ResNet
//! expects, and run an ONNX model with tract (pure Rust).
//!
//! Preprocessing is torchvision's ImageNet evaluation transform: resize so the
//! shorter side is 256 pixels (bilinear, the `image` crate's triangle filter),
//! crop the central 224 × 224, scale to `[0, 1]`, subtract the ImageNet mean
//! and divide by its standard deviation per channel, lay out as
//! `[1, 3, 224, 224]` (NCHW). The model's output (or the named node's, for
//! ResNet50 the global pooling before the classifier) flattened is the
//! embedding; its length is the embedding dimension this host must be set to.

use image::{ImageFormat, ImageReader, Limits, RgbImage, imageops};
use std::io::Cursor;
use std::path::Path;
use tract_onnx::prelude::*;

/// Side of the square the model sees.
pub const SIDE: u32 = 224;
/// Shorter side after the resize, before the centre crop.
pub const RESIZE: u32 = 256;
/// ImageNet's per-channel mean (RGB).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Widest and tallest image accepted, in pixels.
pub const MAX_SIDE: u32 = 8_192;
/// Most memory a decoder may ask for.
pub const MAX_DECODE_BYTES: u64 = 64 << 20;

/// Why an image could not be embedded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// Not PNG or JPEG (by its first bytes).
    #[error("the image is not PNG or JPEG{0}")]
    Format(String),
    /// Larger than the limits allow.
    #[error("the image is too large: {0}")]
    TooLarge(String),
    /// The decoder refused it.
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
    /// The model failed on it.
    #[error("the image model failed: {0}")]
    Model(String),
}

/// Decodes PNG or JPEG bytes into RGB, within [`MAX_SIDE`] and
/// [`MAX_DECODE_BYTES`].
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => return Err(ImageError::Format(format!(" ({other:?})"))),
        None => return Err(ImageError::Format(String::new())),
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    match reader.decode() {
        Ok(image) => Ok(image.to_rgb8()),
        Err(image::ImageError::Limits(e)) => Err(ImageError::TooLarge(format!(
            "{e} (at most {MAX_SIDE} pixels a side and {} MiB decoded)",
            MAX_DECODE_BYTES >> 20
        ))),
        Err(e) => Err(ImageError::Decode(e.to_string())),
    }
}

/// The model's input for `image`: `3 × 224 × 224` values, channel-major.
pub fn preprocess(image: &RgbImage) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let scale = RESIZE as f64 / w.min(h) as f64;
    let (rw, rh) = (
        ((w as f64 * scale).round() as u32).max(SIDE),
        ((h as f64 * scale).round() as u32).max(SIDE),
    );
    let resized = imageops::resize(image, rw, rh, imageops::FilterType::Triangle);
    let (left, top) = ((rw - SIDE) / 2, (rh - SIDE) / 2);
    let plane = (SIDE * SIDE) as usize;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let pixel = resized.get_pixel(left + x, top + y);
            let at = (y * SIDE + x) as usize;
            for c in 0..3 {
                out[c * plane + at] = (pixel[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    out
}

type Plan = Arc<TypedSimplePlan>;

/// An ONNX image model, loaded and optimised for `[1, 3, 224, 224]` input.
pub struct ImageModel {
    plan: Plan,
    dim: usize,
    digest: String,
}

impl std::fmt::Debug for ImageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageModel")
            .field("dim", &self.dim)
            .field("digest", &self.digest)
            .finish()
    }
}

impl ImageModel {
    /// Loads the model at `path`; `output` names the node whose value is the
    /// embedding (the model's first output when `None`).
    pub fn load(path: &Path, output: Option<&str>) -> Result<ImageModel, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read the image model {}: {e}", path.display()))?;
        ImageModel::from_bytes(&bytes, output).map_err(|e| format!("the image model {}: {e}", path.display()))
    }

    /// Loads a model from its ONNX bytes (see [`ImageModel::load`]).
    pub fn from_bytes(bytes: &[u8], output: Option<&str>) -> Result<ImageModel, String> {
        let mut model = tract_onnx::onnx()
            // The model zoo's ResNet50 declares value shapes tract disagrees with.
            .with_ignore_output_shapes(true)
            .model_for_read(&mut &bytes[..])
            .map_err(|e| format!("not a model tract can load: {e}"))?;
        if let Some(name) = output {
            model
                .select_output_outlets(&[model
                    .node_by_name(name)
                    .map_err(|_| format!("no node named {name:?} (MODEL_OUTPUT names a node, not a tensor)"))?
                    .id
                    .into()])
                .map_err(|e| e.to_string())?;
        }
        let plan = model
            .with_input_fact(0, f32::fact([1, 3, SIDE as usize, SIDE as usize]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("it does not take one [1, 3, 224, 224] float image: {e}"))?;
        let mut loaded = ImageModel {
            plan,
            dim: 0,
            digest: blake3::hash(bytes).to_hex()[..16].to_string(),
        };
        loaded.dim = loaded
            .run(vec![0.0; 3 * (SIDE * SIDE) as usize])
            .map_err(|e| e.to_string())?
            .len();
        if loaded.dim == 0 {
            return Err("its output is empty".into());
        }
        Ok(loaded)
    }

    /// The embedding's length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The first 16 hex digits of the model file's BLAKE3 hash (which model
    /// a host runs, for its status).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Runs the model on a preprocessed input (see [`preprocess`]).
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>, ImageError> {
        let side = SIDE as usize;
        let tensor = Tensor::from_shape(&[1, 3, side, side], &input).map_err(|e| ImageError::Model(e.to_string()))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(|e| ImageError::Model(e.to_string()))?;
        let output = outputs.first().ok_or_else(|| ImageError::Model("no output".into()))?;
        let view = output
            .to_plain_array_view::<f32>()
            .map_err(|e| ImageError::Model(e.to_string()))?;
        Ok(view.iter().copied().collect())
    }

    /// Decodes, preprocesses and embeds image bytes.
    pub fn embed(&self, bytes: &[u8]) -> Result<Vec<f32>, ImageError> {
        self.run(preprocess(&decode(bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_flat_colour_is_normalised_per_channel_and_the_crop_is_central() {
        // 300 × 600: resized to 256 × 512, the crop's rows 144..368 of it.
        let mut image = RgbImage::from_pixel(300, 600, Rgb([255, 0, 128]));
        // Top and bottom quarters another colour: outside the crop.
        for y in (0..150).chain(450..600) {
            for x in 0..300 {
                image.put_pixel(x, y, Rgb([0, 255, 0]));
            }
        }
        let input = preprocess(&image);
        assert_eq!(input.len(), 3 * 224 * 224);
        let plane = 224 * 224;
        let want = [
            (1.0 - MEAN[0]) / STD[0],
            (0.0 - MEAN[1]) / STD[1],
            (128.0 / 255.0 - MEAN[2]) / STD[2],
        ];
        for c in 0..3 {
            for at in [0, 223, plane / 2, plane - 1] {
                assert!((input[c * plane + at] - want[c]).abs() < 1e-5, "channel {c} at {at}");
            }
        }
    }

    #[test]
    fn anything_but_png_or_jpeg_is_refused_by_name() {
        assert!(matches!(decode(b"GIF89a\x01\x00"), Err(ImageError::Format(_))));
        assert!(matches!(decode(b"not an image at all"), Err(ImageError::Format(_))));
        // A PNG signature with nothing after it.
        assert!(matches!(decode(b"\x89PNG\r\n\x1a\n"), Err(ImageError::Decode(_))));
    }

    #[test]
    fn an_image_past_the_limits_is_too_large() {
        for (w, h) in [(MAX_SIDE + 1, 1), (1, MAX_SIDE + 1), (5_000, 5_000)] {
            let mut png = Vec::new();
            RgbImage::new(w, h)
                .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                .unwrap();
            assert!(matches!(decode(&png), Err(ImageError::TooLarge(_))), "{w} x {h}");
        }
        let mut png = Vec::new();
        RgbImage::new(MAX_SIDE, 1)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        assert_eq!(decode(&png).unwrap().dimensions(), (MAX_SIDE, 1));
    }
}
