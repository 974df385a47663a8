//! The training regimes of Using and Abusing Equivariance: which rotation each training image
//! gets before it enters the network.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Regime {
    /// No rotation.
    Upright,
    /// A uniformly random angle in [0, 360) degrees per image.
    Uniform,
    /// An angle ~ N(45, sigma^2) degrees per image.
    Gaussian { sigma_degrees: f64 },
}

impl Regime {
    /// The rotation of one training image, in degrees.
    pub fn sample_degrees(&self, rng: &mut impl Rng) -> f64 {
        match *self {
            Regime::Upright => 0.0,
            Regime::Uniform => rng.random_range(0.0..360.0),
            Regime::Gaussian { sigma_degrees } => Normal::new(45.0, sigma_degrees)
                .expect("sigma is validated when parsing and by TrainConfig::validate")
                .sample(rng),
        }
    }
}

impl fmt::Display for Regime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Regime::Upright => f.write_str("upright"),
            Regime::Uniform => f.write_str("uniform"),
            Regime::Gaussian { sigma_degrees } => write!(f, "gaussian:{sigma_degrees}"),
        }
    }
}

impl FromStr for Regime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "regimes: upright, uniform, gaussian:SIGMA (degrees, e.g. gaussian:30)";
        match s {
            "upright" => Ok(Regime::Upright),
            "uniform" => Ok(Regime::Uniform),
            _ => {
                let sigma = s
                    .strip_prefix("gaussian:")
                    .ok_or_else(|| format!("unknown regime `{s}`; {usage}"))?;
                let sigma_degrees: f64 = sigma
                    .parse()
                    .map_err(|_| format!("`{sigma}` is not a number; {usage}"))?;
                if !(sigma_degrees.is_finite() && sigma_degrees >= 0.0) {
                    return Err(format!("sigma must be >= 0, got {sigma}; {usage}"));
                }
                Ok(Regime::Gaussian { sigma_degrees })
            }
        }
    }
}

impl TryFrom<String> for Regime {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Regime> for String {
    fn from(r: Regime) -> String {
        r.to_string()
    }
}
