//! IDX reading: valid raw and gzip files, and clear errors for corrupt ones.

use std::io::Write;
use std::path::PathBuf;

use equivar_data::LabelledImages;
use equivar_data::idx::{self, DataError};
use flate2::write::GzEncoder;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("equivar-idx-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn reads_raw_and_gzip_images_with_labels() {
    let pixels: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8).collect();
    let images = write("img", &idx_bytes(&[2, 3, 3], &pixels));
    let labels = write("lab.gz", &gzip(&idx_bytes(&[2], &[7, 1])));
    let set = LabelledImages::read(&images, &labels).unwrap();
    assert_eq!((set.len(), set.rows, set.cols), (2, 3, 3));
    assert_eq!(set.pixels, pixels);
    assert_eq!(set.labels, vec![7, 1]);
}

/// A header declaring non-square (or empty) images is refused, naming the file, instead of a
/// panic wherever the images are resized.
#[test]
fn non_square_images_are_refused_naming_the_file() {
    let labels = write("lab-sq", &idx_bytes(&[2], &[7, 1]));
    for (name, dims) in [("img-3x4", [2u32, 3, 4]), ("img-0x0", [2, 0, 0])] {
        let n = (dims[0] * dims[1] * dims[2]) as usize;
        let images = write(name, &idx_bytes(&dims, &vec![0; n]));
        let err = LabelledImages::read(&images, &labels).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::NotSquare { .. }), "{msg}");
        assert!(msg.contains(name) && msg.contains("square"), "{msg}");
    }
}

#[test]
fn truncated_file_is_named_with_sizes() {
    let mut bytes = idx_bytes(&[2, 3, 4], &[0; 24]);
    bytes.truncate(bytes.len() - 5);
    let path = write("truncated", &bytes);
    let err = idx::read(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 24,
                found: 19,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("truncated") && msg.contains(path.to_str().unwrap()),
        "{msg}"
    );
    // truncated inside the header
    let err = idx::read(&write("short-header", &[0, 0, 8, 3, 0, 0])).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
}

#[test]
fn wrong_magic_is_refused() {
    for bytes in [
        &[1u8, 0, 8, 1, 0, 0, 0, 0][..],
        &[0, 0, 0x0d, 1, 0, 0, 0, 0],
        &[0, 0, 8, 0],
        &[0, 0],
    ] {
        let err = idx::read(&write("magic", bytes)).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err}");
        assert!(err.to_string().contains("not an IDX file"));
    }
}

#[test]
fn corrupt_gzip_and_trailing_bytes_are_refused() {
    let mut gz = gzip(&idx_bytes(&[3], &[1, 2, 3]));
    let n = gz.len();
    gz.truncate(n - 6);
    let err = idx::read(&write("corrupt.gz", &gz)).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");

    let mut bytes = idx_bytes(&[3], &[1, 2, 3]);
    bytes.push(9);
    let err = idx::read(&write("trailing", &bytes)).unwrap_err();
    assert!(
        matches!(err, DataError::TrailingBytes { extra: 1, .. }),
        "{err}"
    );
}

#[test]
fn mismatched_images_and_labels_are_refused() {
    let images = write("img3", &idx_bytes(&[3, 1, 1], &[0; 3]));
    let labels = write("lab2", &idx_bytes(&[2], &[0; 2]));
    let err = LabelledImages::read(&images, &labels).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                n_images: 3,
                n_labels: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = LabelledImages::read(&labels, &labels).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::WrongRank {
                expected: 3,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    let missing = std::env::temp_dir().join("equivar-no-such-dir/train-images");
    let err = idx::read(&missing).unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("equivar-no-such-dir"),
        "{err}"
    );
}
