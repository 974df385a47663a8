//! QM9 from the package index (ignored: it downloads 104 MB; run with
//! `cargo test -p equivar-data --test qm9 -- --ignored`).

use equivar_data::qm9::{self, Target};

#[test]
#[ignore = "downloads qm9pack 1.0.3 (104 MB) with pip"]
fn fetches_converts_and_verifies_qm9() {
    let cache = tempfile::tempdir().unwrap();
    let (file, built) = qm9::fetch(cache.path(), false).unwrap();
    assert!(built);
    assert!(
        !qm9::fetch(cache.path(), false).unwrap().1,
        "a second fetch finds the verified file"
    );
    let data = qm9::load(cache.path()).unwrap();
    assert_eq!(data.len(), qm9::MOLECULES);
    // E3-FACTS.md: atoms per element over the whole set.
    let count = |z: u8| data.atomic_numbers.iter().filter(|&&a| a == z).count();
    assert_eq!(
        [count(1), count(6), count(7), count(8), count(9)],
        [1_208_486, 831_925, 132_498, 183_265, 3_036]
    );
    // Molecule 1 is methane, C first.
    assert_eq!(data.index[0], 1);
    assert_eq!(&data.atomic_numbers[data.atoms(0)], &[6, 1, 1, 1, 1]);
    let alpha: Vec<f64> = (0..data.len())
        .map(|m| data.target(m, Target::Alpha))
        .collect();
    let (lo, hi) = alpha
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(
        (lo - 6.31).abs() < 0.01 && (hi - 196.62).abs() < 0.01,
        "alpha range {lo}..{hi}"
    );
    // gap = lumo - homo to 1e-4 (Hartree).
    for m in (0..data.len()).step_by(97) {
        let d = data.target(m, Target::Gap)
            - (data.target(m, Target::Lumo) - data.target(m, Target::Homo));
        assert!(d.abs() < 1.1e-4, "molecule {m}: {d}");
    }
    let split = qm9::standard_split(&data).unwrap();
    assert_eq!(data.index[split.train[0]], 133_161);
    // A damaged file is refused with the fix named.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let e = qm9::load(cache.path()).unwrap_err().to_string();
    assert!(e.contains("--force"), "{e}");
    assert!(
        qm9::fetch(cache.path(), false).unwrap().1,
        "a damaged file is rebuilt"
    );
}
