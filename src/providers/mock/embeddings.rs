//! The mock's embeddings: deterministic vectors, so the same input and model always give the
//! same vector. Each component comes from a SplitMix64 sequence seeded with a hash of the
//! model and the input; the vector is L2-normalised, as OpenAI's are.

use crate::hash::fnv1a;

/// The mock's vector for `input` on `model`, `dimensions` long (at least 1).
pub fn vector(model: &str, input: &str, dimensions: u32) -> Vec<f32> {
    let mut seed = model.as_bytes().to_vec();
    seed.push(0);
    seed.extend_from_slice(input.as_bytes());
    let mut state = fnv1a(&seed);
    let raw: Vec<f64> = (0..dimensions.max(1))
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Uniform in [-1, 1).
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return raw.iter().map(|_| 0.0).collect();
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_vector_other_input_other_vector() {
        let a = vector("mock-embed-1", "hello", 64);
        assert_eq!(a, vector("mock-embed-1", "hello", 64));
        assert_ne!(a, vector("mock-embed-1", "hello!", 64));
        assert_ne!(a, vector("mock-embed-2", "hello", 64));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn vectors_are_unit_length_and_spread() {
        for dims in [1, 3, 256, 1536] {
            let v = vector("m", "some text", dims);
            assert_eq!(v.len(), dims as usize);
            let norm: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
            assert!((norm - 1.0).abs() < 1e-5, "{dims}: {norm}");
        }
        let v = vector("m", "x", 256);
        assert!(v.iter().any(|x| *x > 0.0) && v.iter().any(|x| *x < 0.0));
    }
}
