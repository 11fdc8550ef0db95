//! Golden-angle palettes: hues step by the golden angle from a seeded start, so
//! any prefix of a palette is well spread; lightness and chroma come from the same
//! SplitMix64 stream. Colours are chosen in OKLCH and mapped into the sRGB gamut by
//! reducing chroma, so every colour has an exact hex form.

use crate::splitmix::SplitMix64;
use serde::Serialize;

/// The golden angle in degrees, 360° × (1 − 1/φ).
pub const GOLDEN_ANGLE: f64 = 137.507_764_050_037_85;

/// Most colours in one palette.
pub const MAX_COLORS: usize = 4096;

/// One palette entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PaletteColor {
    /// Position in the palette.
    pub index: usize,
    /// `#rrggbb`.
    pub hex: String,
    /// The colour in OKLCH, after gamut mapping.
    pub oklch: Oklch,
    /// CSS form, `oklch(L C H)`.
    pub css: String,
}

/// An OKLCH colour: lightness 0–1, chroma, hue in degrees. Rounded to 4 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Oklch {
    /// Perceptual lightness, 0 to 1.
    pub l: f64,
    /// Chroma.
    pub c: f64,
    /// Hue, degrees in [0, 360).
    pub h: f64,
}

fn round4(x: f64) -> f64 {
    libm::round(x * 10_000.0) / 10_000.0
}

/// OKLCH to linear sRGB (Ottosson's OKLab matrices).
fn oklch_to_linear_srgb(l: f64, c: f64, h_degrees: f64) -> [f64; 3] {
    let h = h_degrees.to_radians();
    let (a, b) = (c * libm::cos(h), c * libm::sin(h));
    let l_ = l + 0.396_337_777_4 * a + 0.215_803_757_3 * b;
    let m_ = l - 0.105_561_345_8 * a - 0.063_854_172_8 * b;
    let s_ = l - 0.089_484_177_5 * a - 1.291_485_548_0 * b;
    let (l3, m3, s3) = (l_ * l_ * l_, m_ * m_ * m_, s_ * s_ * s_);
    [
        4.076_741_662_1 * l3 - 3.307_711_591_3 * m3 + 0.230_969_929_2 * s3,
        -1.268_438_004_6 * l3 + 2.609_757_401_1 * m3 - 0.341_319_396_5 * s3,
        -0.004_196_086_3 * l3 - 0.703_418_614_7 * m3 + 1.707_614_701_0 * s3,
    ]
}

fn in_gamut(rgb: &[f64; 3]) -> bool {
    rgb.iter().all(|&x| (-1e-9..=1.0 + 1e-9).contains(&x))
}

fn gamma_encode(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    if x <= 0.003_130_8 {
        12.92 * x
    } else {
        1.055 * libm::pow(x, 1.0 / 2.4) - 0.055
    }
}

/// The largest chroma up to `c` at which (l, h) is inside sRGB (bisection).
fn fit_chroma(l: f64, c: f64, h: f64) -> f64 {
    if in_gamut(&oklch_to_linear_srgb(l, c, h)) {
        return c;
    }
    let (mut lo, mut hi) = (0.0, c);
    for _ in 0..32 {
        let mid = (lo + hi) / 2.0;
        if in_gamut(&oklch_to_linear_srgb(l, mid, h)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn hex(rgb: [f64; 3]) -> String {
    let byte = |x: f64| libm::round(gamma_encode(x) * 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", byte(rgb[0]), byte(rgb[1]), byte(rgb[2]))
}

/// `n` colours from `seed` (n is capped at [`MAX_COLORS`] by the caller).
pub fn palette(n: usize, seed: u64) -> Vec<PaletteColor> {
    let mut stream = SplitMix64::new(seed);
    let start = stream.next_f64() * 360.0;
    (0..n)
        .map(|index| {
            let h = libm::fmod(start + index as f64 * GOLDEN_ANGLE, 360.0);
            let l = 0.60 + 0.18 * stream.next_f64();
            let c = fit_chroma(l, 0.10 + 0.08 * stream.next_f64(), h);
            let oklch = Oklch {
                l: round4(l),
                c: round4(c),
                h: round4(h),
            };
            PaletteColor {
                index,
                hex: hex(oklch_to_linear_srgb(l, c, h)),
                css: format!("oklch({:.4} {:.4} {:.4})", oklch.l, oklch.c, oklch.h),
                oklch,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_colours_convert() {
        // OKLCH of pure white and of sRGB red (#ff0000 ≈ oklch(0.6280 0.2577 29.23)).
        assert_eq!(hex(oklch_to_linear_srgb(1.0, 0.0, 0.0)), "#ffffff");
        assert_eq!(hex(oklch_to_linear_srgb(0.627_955, 0.257_683, 29.2339)), "#ff0000");
    }

    #[test]
    fn hues_step_by_the_golden_angle_and_stay_in_gamut() {
        let p = palette(64, 42);
        for w in p.windows(2) {
            let step = (w[1].oklch.h - w[0].oklch.h).rem_euclid(360.0);
            assert!((step - GOLDEN_ANGLE).abs() < 1e-3, "{step}");
        }
        for c in &p {
            assert!(in_gamut(&oklch_to_linear_srgb(c.oklch.l, c.oklch.c * 0.999, c.oklch.h)));
        }
    }

    #[test]
    fn same_seed_same_palette_other_seed_other_palette() {
        assert_eq!(palette(10, 7), palette(10, 7));
        assert_ne!(palette(10, 7), palette(10, 8));
        assert_eq!(palette(10, 7)[..4], palette(4, 7)[..]);
    }
}
