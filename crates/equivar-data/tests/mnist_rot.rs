//! Rotated MNIST: the generation is deterministic (SHA-256 of the result on the embedded
//! MNIST subset, and on the full MNIST in the ignored test), each image is its source rotated
//! by its angle, the labels follow their images, the angles are uniform, and `make` writes
//! the files atomically and leaves verified files alone.
//!
//! The full generation: `cargo test --release -p equivar-data --test mnist_rot -- --ignored`
//! (needs `equivar data fetch mnist`).

use equivar_data::digest::sha256_bytes;
use equivar_data::mnist_rot::{self, SplitMix64, generate, idx_bytes};
use equivar_data::transform::rotate_bilinear;
use equivar_data::{DataLocation, Dataset, Split, cache_dir, load};

#[test]
fn splitmix64_gives_its_reference_values() {
    // The first outputs for seed 1234567 (Vigna's reference implementation, splitmix64.c).
    let mut rng = SplitMix64::new(1234567);
    let want = [
        6457827717110365317u64,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ];
    for w in want {
        assert_eq!(rng.next_u64(), w);
    }
}

fn embedded() -> (equivar_data::LabelledImages, equivar_data::LabelledImages) {
    let (train, _) = load(Dataset::Mnist, Split::Train, &DataLocation::Embedded).unwrap();
    let (test, _) = load(Dataset::Mnist, Split::Test, &DataLocation::Embedded).unwrap();
    (train, test)
}

#[test]
fn generation_on_the_embedded_subset_is_deterministic_and_faithful() {
    let (train_pool, test_pool) = embedded();
    let pool = [&train_pool, &test_pool];
    let (train, test) = generate(&pool, 2_000, 8_000, mnist_rot::SEED);
    let digests: Vec<String> = [&train, &test]
        .iter()
        .flat_map(|s| {
            let (images, labels) = idx_bytes(&s.images);
            [sha256_bytes(&images), sha256_bytes(&labels)]
        })
        .collect();
    println!("{digests:#?}");
    assert_eq!(
        digests,
        [
            "7e5ddf3526daf89371644dc7a776efa53a173e4725e266ad81813d8c37b50a63",
            "0cc0e36bd44bc74d2158248760195102112a272fcca0174f925963bad32f4356",
            "1324533634fd42a5839bd2ee64998cbcd3ed22c2564b60cd14e86ffce43278db",
            "556cf5e2f6bd46fa0bcdbde5eb291b1a1f56a07ca7afbd9232b5d892659da824",
        ]
    );
    // Disjoint sources covering the pool; each image its source rotated by its angle, with
    // its source's label.
    let mut seen = vec![false; 10_000];
    for split in [&train, &test] {
        for (k, (&source, &angle)) in split.sources.iter().zip(&split.angles).enumerate() {
            assert!(!seen[source], "image {source} drawn twice");
            seen[source] = true;
            assert!((0.0..360.0).contains(&angle));
            let (pixels, label) = if source < 8_000 {
                (
                    &train_pool.pixels[source * 784..][..784],
                    train_pool.labels[source],
                )
            } else {
                let s = source - 8_000;
                (&test_pool.pixels[s * 784..][..784], test_pool.labels[s])
            };
            assert_eq!(split.images.labels[k], label);
            if k < 20 {
                let src: Vec<f32> = pixels.iter().map(|&b| b as f32).collect();
                let mut out = vec![0.0f32; 784];
                rotate_bilinear(&src, 28, angle, &mut out);
                let want: Vec<u8> = out
                    .iter()
                    .map(|v| v.round().clamp(0.0, 255.0) as u8)
                    .collect();
                assert_eq!(&split.images.pixels[k * 784..][..784], &want[..]);
            }
        }
    }
    assert!(seen.iter().all(|s| *s));
    // Uniform angles: each 45-degree octant holds an eighth (10,000 draws: std 33).
    let mut octants = [0usize; 8];
    for a in train.angles.iter().chain(&test.angles) {
        octants[(a / 45.0) as usize] += 1;
    }
    println!("angles per octant: {octants:?}");
    assert!(
        octants.iter().all(|&n| (1_130..=1_370).contains(&n)),
        "{octants:?}"
    );
}

/// The published generation from the full MNIST: the table's SHA-256, written by `make`.
#[test]
#[ignore = "needs the full MNIST (equivar data fetch mnist); about 3 s"]
fn the_full_generation_matches_the_published_checksums() {
    let cache = cache_dir(None);
    let made = mnist_rot::make(&cache, true).unwrap();
    assert!(made.generated);
    for f in Dataset::MnistRot.files() {
        let bytes = std::fs::read(made.dir.join(f.name)).unwrap();
        assert_eq!(bytes.len() as u64, f.size, "{}", f.name);
        assert_eq!(sha256_bytes(&bytes), f.sha256, "{}", f.name);
    }
    // A second make finds the verified files and does nothing.
    assert!(!mnist_rot::make(&cache, false).unwrap().generated);
    let (test, _) = load(
        Dataset::MnistRot,
        Split::Test,
        &DataLocation::Asked {
            dir: cache,
            by: "the test".into(),
        },
    )
    .unwrap();
    assert_eq!(test.len(), mnist_rot::TEST_COUNT);
}

#[test]
fn making_without_mnist_says_how_to_get_it_and_writes_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let err = mnist_rot::make(cache.path(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("equivar data fetch mnist") && err.contains("equivar data make mnist-rot"),
        "{err}"
    );
    assert!(!Dataset::MnistRot.dir(cache.path()).exists());
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
