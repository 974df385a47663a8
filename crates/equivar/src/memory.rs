//! Memory a command will need, estimated from the plan before any tensor exists, against what
//! the machine has: a size or batch that cannot fit is a clear error, not an abort in the
//! allocator or a visit from the out-of-memory killer.

use crate::error::{EquivarError, Result};
use crate::plan::Plan;

impl Plan {
    /// Bytes of f32 activations one forward pass over `batch` images holds: the input, every
    /// layer's output, and the largest conv's im2col workspace (an upper bound: equivar's
    /// kernels work on slices of it).
    pub fn forward_bytes(&self, batch: usize) -> f64 {
        let plane = |size: usize| self.domain.points(size);
        let input = self.input_type.channels() as f64 * plane(self.input_size);
        let outputs: f64 = self
            .layers
            .iter()
            .map(|l| l.out_type.channels() as f64 * plane(l.out_size))
            .sum();
        let workspace = self
            .layers
            .iter()
            .filter_map(|l| {
                let w = l.window?;
                Some((l.in_type.channels() * w.kernel * w.kernel) as f64 * plane(l.out_size))
            })
            .fold(0.0, f64::max);
        4.0 * batch as f64 * (input + outputs + workspace)
    }
}

/// Memory the machine can give a new allocation now (`MemAvailable`, Linux); `None` where it
/// cannot be read, and then no estimate is refused.
pub fn available_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// `Ok` if `needed` bytes fit in the available memory; otherwise an error saying what needs
/// how much, what there is, and `fix`.
pub fn ensure_fits(what: &str, needed: f64, fix: &str) -> Result<()> {
    match available_bytes() {
        Some(available) if needed > available => Err(EquivarError::OutOfMemory {
            what: what.to_string(),
            needed_gb: needed / 1e9,
            available_gb: available / 1e9,
            fix: fix.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::models;

    #[test]
    fn forward_bytes_grow_with_batch_and_area() {
        let spec = models::spec("abusing-p4").unwrap();
        let small = crate::plan::Plan::new(&spec, 28).unwrap();
        let big = crate::plan::Plan::new(&spec, 56).unwrap();
        let one = small.forward_bytes(1);
        assert!((small.forward_bytes(8) - 8.0 * one).abs() < 1e-6 * one);
        // Activations scale with the pixel count (sizes round at each stride: 3.5-4.5x).
        let ratio = big.forward_bytes(1) / one;
        assert!((3.5..4.5).contains(&ratio), "{ratio}");
        // At least the input and every layer's output.
        assert!(one >= 4.0 * (28.0 * 28.0));
    }

    #[test]
    fn an_impossible_need_is_an_error_naming_the_fix() {
        if super::available_bytes().is_none() {
            return; // not Linux: nothing is refused, which the doc comment says
        }
        let err = super::ensure_fits("`check` at 100000x100000", 1e18, "use a smaller size")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("100000x100000") && err.contains("use a smaller size"),
            "{err}"
        );
        super::ensure_fits("nothing", 1.0, "").unwrap();
    }
}
