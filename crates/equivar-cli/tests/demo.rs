//! `equivar demo` on this machine: the exact model's accuracy is the same at all four quarter
//! turns (a property of the network, not of the CPU's rounding), and the output says which
//! CPU measured it and which data it used.

mod common;
use common::equivar;

#[test]
fn the_exact_model_is_equal_at_every_quarter_turn() {
    let (code, stdout, stderr) = equivar(&["demo"]);
    assert_eq!(code, 0, "{stderr}");
    let row = |plan: &str| -> Vec<f64> {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(plan) && l.contains('%'))
            .unwrap_or_else(|| panic!("no `{plan}` row in:\n{stdout}"));
        line.split_whitespace()
            .filter_map(|w| w.strip_suffix('%')?.parse().ok())
            .collect()
    };
    let exact = row("exact");
    assert_eq!(exact.len(), 4, "{stdout}");
    assert!(exact.iter().all(|&a| a == exact[0]), "{stdout}");
    assert!(exact[0] > 50.0, "the exact model did not learn: {stdout}");
    assert_eq!(row("approximate").len(), 4, "{stdout}");
    assert!(
        stdout.contains("Measured on") && stdout.contains("threads"),
        "{stdout}"
    );
    assert!(
        stdout.contains("data: the embedded MNIST subset"),
        "{stdout}"
    );
}
