//! Helpers shared by the training tests.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use equivar::nn::Net;

/// Every float parameter (trainable or running batch-norm statistic) in visiting order, and
/// whether it is trainable.
pub struct Flatten {
    pub values: Vec<f32>,
    pub trainable: Vec<bool>,
}

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().convert::<f32>();
        let values = values.as_slice::<f32>().unwrap();
        self.values.extend(values);
        let trainable = param.is_require_grad();
        self.trainable.extend(values.iter().map(|_| trainable));
    }
}

pub fn flatten(net: &Net) -> Flatten {
    let mut visitor = Flatten {
        values: Vec::new(),
        trainable: Vec::new(),
    };
    net.visit(&mut visitor);
    visitor
}
