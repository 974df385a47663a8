//! Networks on molecular graphs behind one type: what a model file describes (`"kind":
//! "segnn"` or `"nequip"` and that model's sizes), and the module it builds. A new molecular
//! model is a new variant here.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::nequip::{Nequip, NequipConfig};
use super::segnn::{GraphBatch, Segnn, SegnnConfig};
use crate::o3::{Irreps, O3Error};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MoleculeModelConfig {
    Segnn(SegnnConfig),
    Nequip(NequipConfig),
}

// One model per run: the size of the enum does not matter, and burn's derive wants the modules
// inline.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum MoleculeModel {
    Segnn(Segnn),
    Nequip(Nequip),
}

/// Why a model file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("cannot read the model file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the model file {path} is not a molecular model: {reason}. It needs \"kind\": \"segnn\" \
         or \"nequip\" and that model's fields (models/segnn-qm9.json is an example)"
    )]
    Invalid { path: String, reason: String },
}

impl MoleculeModelConfig {
    pub fn init(&self, device: &Device) -> Result<MoleculeModel, O3Error> {
        Ok(match self {
            MoleculeModelConfig::Segnn(c) => MoleculeModel::Segnn(Segnn::new(c, device)?),
            MoleculeModelConfig::Nequip(c) => MoleculeModel::Nequip(Nequip::new(c, device)?),
        })
    }

    /// A JSON model file.
    pub fn from_file(path: &Path) -> Result<Self, ModelFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ModelFileError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    pub fn input(&self) -> &Irreps {
        match self {
            MoleculeModelConfig::Segnn(c) => &c.input,
            MoleculeModelConfig::Nequip(c) => &c.input,
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            MoleculeModelConfig::Segnn(c) => c.outputs,
            MoleculeModelConfig::Nequip(c) => c.outputs,
        }
    }

    /// One line for tables: kind, hidden irreps, harmonics degree, layers.
    pub fn describe(&self) -> String {
        match self {
            MoleculeModelConfig::Segnn(c) => format!(
                "SEGNN {} l<={} x{}{}",
                c.hidden,
                c.lmax_attr,
                c.layers,
                if c.raw_edge_vectors {
                    " +raw vectors"
                } else {
                    ""
                }
            ),
            MoleculeModelConfig::Nequip(c) => {
                format!("NequIP {} l<={} x{}", c.hidden, c.lmax, c.layers)
            }
        }
    }
}

impl MoleculeModel {
    /// `[graphs, outputs]`.
    pub fn forward(&self, batch: &GraphBatch) -> Tensor<2> {
        match self {
            MoleculeModel::Segnn(m) => m.forward(batch),
            MoleculeModel::Nequip(m) => m.forward(batch),
        }
    }
}
