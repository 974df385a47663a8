//! Model descriptions as files: a [`NetSpec`] written as JSON or TOML, in its serde form
//! (`name`, `input`, `layers`: each layer a `name`, a `kind` and that kind's fields; see
//! `models/` and README's "Models from files"). Each part is read on its own, so an error
//! names the layer it is in.

use std::path::Path;

use serde_json::Value;

use super::{Domain, LayerSpec, NetSpec};
use crate::error::{EquivarError, Result};
use crate::field::FeatureType;

fn error(origin: &str, reason: impl Into<String>) -> EquivarError {
    EquivarError::ModelFile {
        origin: origin.to_string(),
        reason: reason.into(),
    }
}

impl NetSpec {
    /// Reads a description from a `.json` or `.toml` file (by extension; other names are
    /// read as JSON).
    pub fn from_file(path: &Path) -> Result<NetSpec> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(&origin, format!("cannot read it: {e}")))?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let value: Value = if is_toml {
            toml::from_str(&text).map_err(|e| error(&origin, format!("not valid TOML: {e}")))?
        } else {
            serde_json::from_str(&text)
                .map_err(|e| error(&origin, format!("not valid JSON: {e}")))?
        };
        Self::from_value(&value, &origin)
    }

    /// A description from its parsed form; `origin` names it in errors.
    pub fn from_value(value: &Value, origin: &str) -> Result<NetSpec> {
        let object = value
            .as_object()
            .ok_or_else(|| error(origin, "expected a table with `name`, `input` and `layers`"))?;
        if let Some(key) = object
            .keys()
            .find(|k| !["name", "domain", "input", "layers"].contains(&k.as_str()))
        {
            return Err(error(
                origin,
                format!(
                    "unknown key `{key}`; a description has `name`, `input`, `layers` and \
                     optionally `domain`"
                ),
            ));
        }
        let domain: Domain = match object.get("domain") {
            None => Domain::Plane,
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| error(origin, format!("`domain`: {e} (\"plane\" or \"sphere\")")))?,
        };
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| error(origin, "`name` (a string) is missing"))?;
        let input: FeatureType = serde_json::from_value(
            object
                .get("input")
                .cloned()
                .ok_or_else(|| error(origin, "`input` (the input feature type) is missing"))?,
        )
        .map_err(|e| {
            error(
                origin,
                format!(
                    "`input`: {e} (a feature type, e.g. \"C8: trivial\" or \"C4: 3x trivial\")"
                ),
            )
        })?;
        let layers = object
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| error(origin, "`layers` (a list of layers) is missing"))?;
        let mut spec = NetSpec {
            domain,
            ..NetSpec::new(name, input)
        };
        for (i, layer) in layers.iter().enumerate() {
            let label = layer.get("name").and_then(Value::as_str).map_or_else(
                || format!("layer {}", i + 1),
                |n| format!("layer {} `{n}`", i + 1),
            );
            let parsed: LayerSpec = serde_json::from_value(layer.clone())
                .map_err(|e| error(origin, format!("{label}: {e}")))?;
            if spec.layers.iter().any(|l| l.name == parsed.name) {
                return Err(error(
                    origin,
                    format!("{label}: another layer has that name; names must be unique"),
                ));
            }
            spec.layers.push(parsed);
        }
        if spec.layers.is_empty() {
            return Err(error(origin, "`layers` is empty"));
        }
        Ok(spec)
    }
}
