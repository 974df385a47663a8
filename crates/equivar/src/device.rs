//! Devices by name, for command lines and configuration files: `cpu` (burn's Flex backend,
//! where equivar's own kernels run; the default), and the GPU backends this build was
//! compiled with (cargo features `cuda`, `wgpu`, `vulkan`): `cuda`, `cuda:1`, `wgpu`,
//! `vulkan:0`, ... Every layer runs on every backend through burn's generic ops; the frozen
//! CPU model and equivar's kernels are Flex's only.

use burn::tensor::Device;

use crate::error::{EquivarError, Result};

/// The backends a device name can ask for: name, what it is (and the cargo feature that
/// compiles it in), and whether this build has it.
const BACKENDS: [(&str, &str, bool); 4] = [
    ("cpu", "burn's Flex CPU backend (always built)", true),
    (
        "cuda",
        "NVIDIA GPUs (cargo feature `cuda`)",
        cfg!(feature = "cuda"),
    ),
    (
        "wgpu",
        "any GPU through wgpu (cargo feature `wgpu`)",
        cfg!(feature = "wgpu"),
    ),
    (
        "vulkan",
        "GPUs through Vulkan (cargo feature `vulkan`)",
        cfg!(feature = "vulkan"),
    ),
];

/// The device named `name`: `cpu` (or `flex`), or `BACKEND[:INDEX]` for a GPU backend built
/// in (INDEX counts that backend's GPUs from 0; without it the backend picks).
pub fn parse_device(name: &str) -> Result<Device> {
    let (backend, index) = match name.split_once(':') {
        Some((backend, index)) => {
            let index = index.parse::<usize>().map_err(|_| {
                unknown(name, format!("`{index}` is not a device index (0, 1, ...)"))
            })?;
            (backend, Some(index))
        }
        None => (name, None),
    };
    match backend {
        "cpu" | "flex" => match index {
            None | Some(0) => Ok(Device::flex()),
            Some(i) => Err(unknown(
                name,
                format!("the CPU backend has one device, `cpu`; there is no cpu:{i}"),
            )),
        },
        "cuda" => cuda(index).ok_or_else(|| not_built(name, "cuda")),
        "wgpu" => wgpu(index).ok_or_else(|| not_built(name, "wgpu")),
        "vulkan" => vulkan(index).ok_or_else(|| not_built(name, "vulkan")),
        _ => Err(unknown(name, "no such backend".to_string())),
    }
}

/// The backends this build can run on, by name.
pub fn built_backends() -> Vec<&'static str> {
    BACKENDS
        .iter()
        .filter(|(_, _, built)| *built)
        .map(|(name, _, _)| *name)
        .collect()
}

fn unknown(name: &str, reason: String) -> EquivarError {
    let known: Vec<String> = BACKENDS
        .iter()
        .map(|(b, what, _)| format!("{b} ({what})"))
        .collect();
    EquivarError::UnknownDevice {
        name: name.to_string(),
        reason: format!("{reason}; devices are {}", known.join(", ")),
    }
}

fn not_built(name: &str, feature: &str) -> EquivarError {
    EquivarError::UnknownDevice {
        name: name.to_string(),
        reason: format!(
            "this build has no {feature} backend (it has {}); rebuild with the cargo feature \
             `{feature}`, e.g. `cargo install --path crates/equivar-cli --features {feature}`",
            built_backends().join(", ")
        ),
    }
}

#[cfg(feature = "cuda")]
fn cuda(index: Option<usize>) -> Option<Device> {
    use burn::tensor::DeviceIndex;
    Some(Device::cuda(
        index.map_or(DeviceIndex::Default, DeviceIndex::Specified),
    ))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_: Option<usize>) -> Option<Device> {
    None
}

#[cfg(any(feature = "wgpu", feature = "vulkan"))]
fn gpu_kind(index: Option<usize>) -> burn::tensor::DeviceKind {
    use burn::tensor::DeviceKind;
    index.map_or(DeviceKind::DefaultDevice, DeviceKind::DiscreteGpu)
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>) -> Option<Device> {
    Some(Device::wgpu(gpu_kind(index)))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_: Option<usize>) -> Option<Device> {
    None
}

#[cfg(feature = "vulkan")]
fn vulkan(index: Option<usize>) -> Option<Device> {
    Some(Device::vulkan(gpu_kind(index)))
}

#[cfg(not(feature = "vulkan"))]
fn vulkan(_: Option<usize>) -> Option<Device> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::is_flex;

    #[test]
    fn cpu_names_give_flex_and_bad_names_are_explained() {
        for name in ["cpu", "flex", "cpu:0"] {
            assert!(is_flex(&parse_device(name).unwrap()), "{name}");
        }
        for (name, says) in [
            ("gpu", "no such backend"),
            ("cuda:x", "`x` is not a device index"),
            ("cpu:1", "one device"),
            ("", "no such backend"),
        ] {
            let e = parse_device(name).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("cpu ("), "{name}: {e}");
        }
        if !cfg!(feature = "cuda") {
            let e = parse_device("cuda:0").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
