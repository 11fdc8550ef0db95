//! SplitMix64 (Steele, Lea and Flood, 2014): a tiny, splittable, seedable stream
//! whose outputs are the same on every platform.

/// The golden-ratio increment, ⌊2^64 / φ⌋ (odd).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1) from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The widely published test vector of SplitMix64 seeded with 1234567.
    #[test]
    fn matches_the_reference_stream() {
        let mut s = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| s.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821
            ]
        );
    }

    #[test]
    fn floats_are_in_the_unit_interval() {
        let mut s = SplitMix64::new(0);
        assert!((0..10_000).map(|_| s.next_f64()).all(|x| (0.0..1.0).contains(&x)));
    }
}
