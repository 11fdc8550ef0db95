//! Embeddings: checked, unit-length vectors of the configured dimension.

use thiserror::Error;

/// Why a vector is not an embedding this host takes.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EmbeddingError {
    /// Not the configured dimension.
    #[error("the embedding has {got} values; this host takes embeddings of dimension {want}")]
    Dimension {
        /// What was sent.
        got: usize,
        /// What the host is configured for (`SKILL_EMBEDDING_DIM`).
        want: usize,
    },
    /// A NaN or an infinity.
    #[error("the embedding's value at index {index} is {value}, not a finite number")]
    NotFinite {
        /// Where.
        index: usize,
        /// What (`NaN`, `inf`, `-inf`).
        value: f32,
    },
    /// All zeros (or too small to normalise): it has no direction.
    #[error("the embedding is all zeros (or too small to normalise): it points nowhere")]
    Zero,
}

/// A vector of the configured dimension, scaled to unit length, so that a dot
/// product is the cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Checks `values` (dimension `dim`, every value finite, not all zero) and
    /// scales them to unit length.
    pub fn new(values: Vec<f32>, dim: usize) -> Result<Embedding, EmbeddingError> {
        if values.len() != dim {
            return Err(EmbeddingError::Dimension {
                got: values.len(),
                want: dim,
            });
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(EmbeddingError::NotFinite { index, value });
        }
        // The norm in f64: a sum of 2,048 squares of large f32 values must not
        // overflow, and the scale is the same on every host.
        let norm = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm < 1e-30 || !norm.is_finite() {
            return Err(EmbeddingError::Zero);
        }
        Ok(Embedding(
            values.into_iter().map(|v| (f64::from(v) / norm) as f32).collect(),
        ))
    }

    /// Its values.
    pub fn values(&self) -> &[f32] {
        &self.0
    }

    /// Its dimension.
    pub fn dim(&self) -> usize {
        self.0.len()
    }
}

/// The dot product of two equally long slices, summed in eight lanes and then
/// the lanes in a fixed order: vectorised by the compiler, and the same bits on
/// every host (no reordering is left to the compiler or the CPU).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// Reads a request's embedding as 64-bit numbers narrowed to `f32`, so that a
/// value beyond `f32`'s range becomes an infinity that [`Embedding::new`]
/// names ([`EmbeddingError::NotFinite`]). Read as `f32` directly, `serde_json`
/// (built with `float_roundtrip`) refuses such a number while parsing, as if
/// the body were not valid JSON.
pub(crate) fn narrowed<'de, D>(deserializer: D) -> Result<Option<Vec<f32>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let wide: Option<Vec<f64>> = serde::Deserialize::deserialize(deserializer)?;
    Ok(wide.map(|values| values.into_iter().map(|v| v as f32).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedding_is_checked_and_scaled_to_unit_length() {
        let e = Embedding::new(vec![3.0, 4.0], 2).unwrap();
        assert_eq!(e.values(), &[0.6, 0.8]);
        assert!((dot(e.values(), e.values()) - 1.0).abs() < 1e-6);
        assert_eq!(
            Embedding::new(vec![1.0], 2),
            Err(EmbeddingError::Dimension { got: 1, want: 2 })
        );
        assert!(matches!(
            Embedding::new(vec![1.0, f32::NAN], 2),
            Err(EmbeddingError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            Embedding::new(vec![f32::NEG_INFINITY, 1.0], 2),
            Err(EmbeddingError::NotFinite { index: 0, .. })
        ));
        assert_eq!(Embedding::new(vec![0.0, 0.0], 2), Err(EmbeddingError::Zero));
        // Values whose squares overflow f32 still normalise.
        let big = Embedding::new(vec![f32::MAX, f32::MAX], 2).unwrap();
        assert!((big.values()[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn the_lane_dot_product_matches_a_plain_sum() {
        for n in [0, 1, 7, 8, 9, 31, 2048] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 17) as f32 - 8.0).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), plain, "n = {n} (small integers: exact either way)");
        }
    }
}
