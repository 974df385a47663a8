//! One error type for the library: every variant names the problem and how to fix it.

use thiserror::Error;

/// Errors from building, planning, checking or running equivar models.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EquivarError {
    #[error("unknown group `{0}`: use C<N> or D<N> (N >= 1), or the G-CNN names z2, p4, p4m")]
    UnknownGroup(String),

    #[error("`{text}` is not a feature type: {reason}")]
    FeatureTypeSyntax { text: String, reason: String },

    #[error("invalid representation of {group}: {reason}")]
    InvalidRepresentation { group: String, reason: String },

    #[error(
        "group {group} does not act exactly on the square pixel grid: its rotations are by \
         360/{n} degrees, and only multiples of 90 degrees map pixels to pixels; use C1, C2, C4, \
         D1, D2 or D4"
    )]
    GroupNotOnGrid { group: String, n: usize },

    #[error(
        "layer `{layer}` expects {expected} input, but the previous layer gives {found}; {fix}"
    )]
    FieldTypeMismatch {
        layer: String,
        expected: String,
        found: String,
        fix: String,
    },

    #[error("invalid layer `{layer}`: {reason}")]
    InvalidLayer { layer: String, reason: String },

    #[error("invalid steerable kernel basis: {reason}")]
    InvalidBasis { reason: String },

    #[error(
        "input size {input_size} is too small: layer `{layer}` sees {in_size}x{in_size} pixels, \
         but its window (kernel {kernel}, dilation {dilation}, padding {padding}) spans \
         {span} pixels; use an input of at least {min_input} pixels"
    )]
    InputTooSmall {
        input_size: usize,
        layer: String,
        in_size: usize,
        kernel: usize,
        dilation: usize,
        padding: usize,
        span: usize,
        min_input: usize,
    },

    #[error(
        "layer `{layer}` is not exactly equivariant at input size {input_size}: it sees \
         {in_size}x{in_size} pixels and (n + 2p - d(k-1) - 1) mod s = ({in_size} + 2*{padding} - \
         {dilation}*({kernel}-1) - 1) mod {stride} = {remainder}, not 0, so its sampling grid is \
         not symmetric about the image centre. Nearest exactly equivariant input sizes: {nearest}. \
         To build it anyway (e.g. to study approximate equivariance), allow approximate models."
    )]
    NotExact {
        input_size: usize,
        layer: String,
        in_size: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        remainder: usize,
        nearest: String,
    },

    #[error("{context}: expected input of shape {expected}, got {found:?}; {fix}")]
    InputShape {
        context: String,
        expected: String,
        found: Vec<usize>,
        fix: String,
    },

    #[error(
        "input size {input_size} is beyond the largest a plan takes ({max} pixels a side); use \
         a smaller size"
    )]
    InputTooLarge { input_size: usize, max: usize },

    #[error(
        "{what} needs about {needed_gb:.1} GB of memory, but this machine has {available_gb:.1} \
         GB available; {fix}"
    )]
    OutOfMemory {
        what: String,
        needed_gb: f64,
        available_gb: f64,
        fix: String,
    },

    #[error("model description {origin}: {reason}")]
    ModelFile { origin: String, reason: String },

    #[error(
        "unknown model `{name}`; known models: {known} (or a path to a .json/.toml model \
         description, see models/)"
    )]
    UnknownModel { name: String, known: String },

    #[error(
        "unknown kernels `{0}`; choose equivar (equivar's CPU kernels, the default), \
         direct (the same with im2col + GEMM for every conv) or burn (burn's own ops)"
    )]
    UnknownKernels(String),

    #[error(
        "unknown transformation `{0}`; use a comma-separated list of rotation, translation \
         (= translation_x,translation_y), scale, shear, stretch (= stretch_x,stretch_y), \
         saturation, or all"
    )]
    UnknownTransform(String),

    #[error(
        "{context} needs a model on the plane; `{model}` is on the sphere, whose rotations \
         `equivar check --model {model}` measures"
    )]
    NotOnThePlane { context: String, model: String },

    #[error("unknown device `{name}`: {reason}")]
    UnknownDevice { name: String, reason: String },

    #[error("model `{model}` has no layer `{layer}`; its layers are {known}")]
    UnknownLayer {
        model: String,
        layer: String,
        known: String,
    },

    #[error("layer `{layer}` ({kind}) has no lowering to {target}; {fix}")]
    NoLowering {
        layer: String,
        kind: String,
        target: String,
        fix: String,
    },
}

impl EquivarError {
    /// The error with the layer's name filled in, where the error is about a layer that does
    /// not know its own name (a lowering).
    pub(crate) fn in_layer(self, name: &str) -> Self {
        match self {
            EquivarError::NoLowering {
                kind, target, fix, ..
            } => EquivarError::NoLowering {
                layer: name.to_string(),
                kind,
                target,
                fix,
            },
            other => other,
        }
    }

    /// Logits were asked of `context` (a model, frozen or not) whose output `found` is not 1x1.
    pub(crate) fn not_a_classifier(context: String, found: Vec<usize>) -> Self {
        EquivarError::InputShape {
            context,
            expected: "a 1x1 output".to_string(),
            found,
            fix: "end the model with a global pool (and a linear head)".to_string(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = EquivarError> = std::result::Result<T, E>;
