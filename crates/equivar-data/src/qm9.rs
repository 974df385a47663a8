//! QM9: 130,831 small organic molecules (H, C, N, O, F; 3 to 29 atoms) with 12 quantum
//! chemical properties, from the PyPI package `qm9pack==1.0.3` (by the QM9 paper's first
//! author), fetched with the ordinary client (`pip download --no-deps`), verified by SHA-256,
//! and kept as one compact binary file in the cache (`qm9/qm9.bin`, itself checksummed).
//!
//! The package's CSVs hold one molecule per row, sorted by the QM9 (gdb) index, the 3,054
//! "uncharacterized" molecules already left out. Traps handled here: the list fields are
//! quoted Python literals (`"['C','H']"`, `"[[x,y,z],...]"`), numbers such as `0.` occur, and
//! the polarizability tensor lives in a fourth CSV (not needed: its trace / 3 is a column).
//! Targets are kept in the package's units (Hartree, Debye, bohr^3, bohr^2, cal/(mol K));
//! [`Target::paper_factor`] converts to the units the papers report.
//!
//! The standard split (Cormorant, EGNN, SEGNN: 100,000 / 17,748 / 13,083) ships with the
//! crate as gdb index lists (`data/qm9-split-cormorant.json.gz`, made once with numpy's legacy
//! permutation, seed 0).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use thiserror::Error;

use crate::digest;
use crate::lock::{Lock, LockError};

pub const PACKAGE: &str = "qm9pack==1.0.3";
const WHEEL: &str = "qm9pack-1.0.3-py3-none-any.whl";
const WHEEL_SIZE: u64 = 103_712_597;
const WHEEL_SHA256: &str = "1d88c2988007c6778e717ee3224cf511bd60e10732ebe3b7ed500ea5af05c9f0";
const PARTS: [&str; 3] = [
    "qm9pack/data/qm9_part1.csv",
    "qm9pack/data/qm9_part2.csv",
    "qm9pack/data/qm9_part3.csv",
];
/// Molecules in the package (QM9 without the 3,054 uncharacterized ones).
pub const MOLECULES: usize = 130_831;
const CACHE_FILE: &str = "qm9.bin";
const MAGIC: &[u8; 8] = b"EQVQM9\x00\x01";
/// SHA-256 of `qm9.bin` as [`fetch`] writes it (the conversion is deterministic).
const CACHE_SHA256: &str = "6511fceba7662f5bd35c1b361d2bd40d206fda58cee3a00d4a129faf9c9a5a53";
const SPLIT: &[u8] = include_bytes!("../data/qm9-split-cormorant.json.gz");

#[derive(Debug, Error)]
pub enum Qm9Error {
    #[error(
        "`pip` is not available ({source}); install Python's pip, then run `equivar data fetch qm9` again"
    )]
    ClientMissing { source: io::Error },
    #[error(
        "`{command}` failed ({status}):\n{stderr}\ncheck the connection to the package index and run `equivar data fetch qm9` again"
    )]
    ClientFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(
        "{file}: {what} is {found}, expected {expected}; the package is not qm9pack 1.0.3 as published"
    )]
    Mismatch {
        file: String,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("{file}, row {row}: {reason}")]
    Csv {
        file: String,
        row: usize,
        reason: String,
    },
    #[error(
        "QM9 is not in {dir}: run `equivar data fetch qm9` (with --data-dir {dir} if that is where it belongs)"
    )]
    NotFetched { dir: PathBuf },
    #[error("{path}: {reason}; run `equivar data fetch qm9 --force` to rebuild it")]
    Damaged { path: PathBuf, reason: String },
    #[error("the split file: {0}")]
    Split(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Qm9Error + '_ {
    move |source| Qm9Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The 12 standard regression targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Mu,
    Alpha,
    Homo,
    Lumo,
    Gap,
    R2,
    Zpve,
    U0,
    U,
    H,
    G,
    Cv,
}

impl Target {
    pub const ALL: [Target; 12] = [
        Target::Mu,
        Target::Alpha,
        Target::Homo,
        Target::Lumo,
        Target::Gap,
        Target::R2,
        Target::Zpve,
        Target::U0,
        Target::U,
        Target::H,
        Target::G,
        Target::Cv,
    ];

    pub fn name(self) -> &'static str {
        [
            "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv",
        ][self as usize]
    }

    /// The package's column (its spelling, `Enthalphy` included).
    fn column(self) -> &'static str {
        [
            "Dipole_debye",
            "Polarizability_bohr3",
            "HOMO_au",
            "LUMO_au",
            "HOMO_LUMO_gap_au",
            "R2_bohr2",
            "ZPVE_au",
            "InternalEnergy_0K_au",
            "InternalEnergy_298K_au",
            "Enthalphy_298K_au",
            "GibbsFreeEnergy_298K_au",
            "Heatcapacity_Cv_cal_mol_K",
        ][self as usize]
    }

    /// The unit the papers report (SEGNN's table): meV for the energies, else the package's.
    pub fn paper_unit(self) -> &'static str {
        match self {
            Target::Mu => "D",
            Target::Alpha => "bohr^3",
            Target::R2 => "bohr^2",
            Target::Cv => "cal/(mol K)",
            _ => "meV",
        }
    }

    /// Package unit to paper unit: 1 Hartree = 27,211.386246 meV (SEGNN's HAR2EV x 1000).
    pub fn paper_factor(self) -> f64 {
        match self {
            Target::Mu | Target::Alpha | Target::R2 | Target::Cv => 1.0,
            _ => 27_211.386_246,
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                format!("unknown QM9 target `{s}`: use one of {}", names.join(", "))
            })
    }
}

/// All molecules, flattened: molecule `m` owns atoms `atom_offsets[m]..atom_offsets[m + 1]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Qm9 {
    /// QM9 (gdb) index of each molecule, ascending.
    pub index: Vec<u32>,
    pub atom_offsets: Vec<u32>,
    /// Atomic numbers (1, 6, 7, 8, 9).
    pub atomic_numbers: Vec<u8>,
    /// Positions in angstrom.
    pub positions: Vec<[f32; 3]>,
    /// The 12 targets in [`Target::ALL`] order, in the package's units.
    pub targets: Vec<[f64; 12]>,
}

impl Qm9 {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The atoms of molecule `m` (a row position, not a gdb index).
    pub fn atoms(&self, m: usize) -> std::ops::Range<usize> {
        self.atom_offsets[m] as usize..self.atom_offsets[m + 1] as usize
    }

    pub fn target(&self, m: usize, t: Target) -> f64 {
        self.targets[m][t as usize]
    }

    fn push(&mut self, index: u32, atoms: &[(u8, [f32; 3])], targets: [f64; 12]) {
        if self.atom_offsets.is_empty() {
            self.atom_offsets.push(0);
        }
        self.index.push(index);
        for &(z, p) in atoms {
            self.atomic_numbers.push(z);
            self.positions.push(p);
        }
        self.atom_offsets.push(self.atomic_numbers.len() as u32);
        self.targets.push(targets);
    }

    /// The compact binary form: magic, counts, then the arrays (little-endian).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.positions.len() * 13 + self.len() * 104);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.atomic_numbers.len() as u32).to_le_bytes());
        for v in &self.index {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in &self.atom_offsets {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.atomic_numbers);
        for p in &self.positions {
            for c in p {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        for t in &self.targets {
            for v in t {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let s = bytes.get(at..at + n).ok_or("the file ends early")?;
            at += n;
            Ok(s)
        };
        if take(8)? != MAGIC {
            return Err("not an equivar QM9 file (bad magic)".into());
        }
        let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
        let (molecules, atoms) = (u32_at(take(4)?) as usize, u32_at(take(4)?) as usize);
        let mut data = Qm9 {
            index: take(4 * molecules)?.chunks_exact(4).map(u32_at).collect(),
            atom_offsets: take(4 * (molecules + 1))?
                .chunks_exact(4)
                .map(u32_at)
                .collect(),
            atomic_numbers: take(atoms)?.to_vec(),
            ..Qm9::default()
        };
        data.positions = take(12 * atoms)?
            .chunks_exact(12)
            .map(|c| [0, 1, 2].map(|k| f32::from_le_bytes(c[4 * k..4 * k + 4].try_into().unwrap())))
            .collect();
        data.targets = take(96 * molecules)?
            .chunks_exact(96)
            .map(|c| {
                std::array::from_fn(|k| f64::from_le_bytes(c[8 * k..8 * k + 8].try_into().unwrap()))
            })
            .collect();
        if data.atom_offsets.last().copied() != Some(atoms as u32) {
            return Err("atom offsets do not end at the atom count".into());
        }
        Ok(data)
    }
}

fn element(symbol: &str) -> Option<u8> {
    Some(match symbol {
        "H" => 1,
        "C" => 6,
        "N" => 7,
        "O" => 8,
        "F" => 9,
        _ => return None,
    })
}

/// `['C','H','H']` to atomic numbers.
fn parse_elements(text: &str) -> Result<Vec<u8>, String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or("not a [...] list")?;
    inner
        .split(',')
        .map(|s| {
            let s = s.trim().trim_matches('\'').trim_matches('"');
            element(s).ok_or_else(|| format!("unknown element `{s}` (QM9 has H, C, N, O, F)"))
        })
        .collect()
}

/// `[[x,y,z],[x,y,z]]` to points.
fn parse_xyz(text: &str) -> Result<Vec<[f32; 3]>, String> {
    let inner = text
        .trim()
        .strip_prefix("[[")
        .and_then(|t| t.strip_suffix("]]"))
        .ok_or("not a [[...]] list")?;
    inner
        .split("],[")
        .map(|p| {
            let c: Vec<f32> = p
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f32>()
                        .map_err(|_| format!("`{v}` is not a number"))
                })
                .collect::<Result<_, _>>()?;
            <[f32; 3]>::try_from(c).map_err(|c| format!("a point with {} coordinates", c.len()))
        })
        .collect()
}

/// Appends the molecules of one CSV part.
fn parse_part(name: &str, reader: impl Read, data: &mut Qm9) -> Result<(), Qm9Error> {
    let bad = |row: usize, reason: String| Qm9Error::Csv {
        file: name.to_string(),
        row,
        reason,
    };
    let mut csv = csv::Reader::from_reader(reader);
    let headers = csv.headers().map_err(|e| bad(0, e.to_string()))?.clone();
    let col = |h: &str| {
        headers
            .iter()
            .position(|x| x == h)
            .ok_or_else(|| bad(0, format!("no column `{h}`")))
    };
    let (index, elements, xyz, natoms) = (
        col("Index")?,
        col("Elements")?,
        col("XYZ_Ang")?,
        col("N_atoms")?,
    );
    let targets: Vec<usize> = Target::ALL
        .iter()
        .map(|t| col(t.column()))
        .collect::<Result<_, _>>()?;
    for (row, record) in csv.records().enumerate() {
        let row = row + 2; // 1-based, after the header
        let record = record.map_err(|e| bad(row, e.to_string()))?;
        let field = |k: usize| record.get(k).unwrap_or("");
        let idx: u32 = field(index)
            .parse()
            .map_err(|_| bad(row, format!("Index `{}` is not a number", field(index))))?;
        if data.index.last().is_some_and(|&last| idx <= last) {
            return Err(bad(
                row,
                format!("Index {idx} is not above the previous one: the rows must be sorted"),
            ));
        }
        let z = parse_elements(field(elements)).map_err(|e| bad(row, format!("Elements: {e}")))?;
        let p = parse_xyz(field(xyz)).map_err(|e| bad(row, format!("XYZ_Ang: {e}")))?;
        let n: usize = field(natoms)
            .parse()
            .map_err(|_| bad(row, "N_atoms is not a number".into()))?;
        if z.len() != n || p.len() != n {
            return Err(bad(
                row,
                format!(
                    "N_atoms {n}, but {} elements and {} positions",
                    z.len(),
                    p.len()
                ),
            ));
        }
        let mut t = [0.0f64; 12];
        for (slot, &k) in t.iter_mut().zip(&targets) {
            *slot = field(k)
                .parse()
                .map_err(|_| bad(row, format!("`{}` is not a number", field(k))))?;
        }
        let atoms: Vec<(u8, [f32; 3])> = z.into_iter().zip(p).collect();
        data.push(idx, &atoms, t);
    }
    Ok(())
}

/// The cache directory of QM9.
pub fn dir(cache: &Path) -> PathBuf {
    cache.join("qm9")
}

/// Fetches the package, converts it and stores `qm9/qm9.bin` in `cache` (atomically: a
/// staging directory renamed into place), unless it is there and verified (or `force`).
/// Returns the file and whether it was (re)built.
pub fn fetch(cache: &Path, force: bool) -> Result<(PathBuf, bool), Qm9Error> {
    let target = dir(cache);
    let file = target.join(CACHE_FILE);
    fs::create_dir_all(cache).map_err(io_err(cache))?;
    let _lock = Lock::acquire(
        &cache.join(".qm9.fetch.lock"),
        &format!("the QM9 cache in {}", cache.display()),
    )?;
    if !force && file.exists() && verify_cache(&file).is_ok() {
        return Ok((file, false));
    }
    let staging = cache.join(format!(".qm9-staging-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let result = (|| {
        let wheel = download_wheel(&staging)?;
        let data = convert_wheel(&wheel)?;
        let bytes = data.to_bytes();
        let out = staging.join("qm9");
        fs::create_dir_all(&out).map_err(io_err(&out))?;
        let path = out.join(CACHE_FILE);
        let mut f = fs::File::create(&path).map_err(io_err(&path))?;
        f.write_all(&bytes).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
        verify_cache(&path)?;
        if target.exists() {
            fs::remove_dir_all(&target).map_err(io_err(&target))?;
        }
        fs::rename(&out, &target).map_err(io_err(&target))?;
        Ok((file.clone(), true))
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

fn download_wheel(staging: &Path) -> Result<PathBuf, Qm9Error> {
    let mut command = Command::new("pip");
    command
        .args([
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            PACKAGE,
            "-d",
        ])
        .arg(staging);
    let output = command
        .output()
        .map_err(|source| Qm9Error::ClientMissing { source })?;
    if !output.status.success() {
        return Err(Qm9Error::ClientFailed {
            command: format!("pip download --no-deps {PACKAGE}"),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let wheel = staging.join(WHEEL);
    let size = fs::metadata(&wheel).map_err(io_err(&wheel))?.len();
    if size != WHEEL_SIZE {
        return Err(Qm9Error::Mismatch {
            file: WHEEL.into(),
            what: "size",
            expected: WHEEL_SIZE.to_string(),
            found: size.to_string(),
        });
    }
    let sha = digest::sha256_file(&wheel).map_err(io_err(&wheel))?;
    if sha != WHEEL_SHA256 {
        return Err(Qm9Error::Mismatch {
            file: WHEEL.into(),
            what: "SHA-256",
            expected: WHEEL_SHA256.into(),
            found: sha,
        });
    }
    Ok(wheel)
}

/// Reads the three CSV parts straight out of the wheel (a zip archive).
fn convert_wheel(wheel: &Path) -> Result<Qm9, Qm9Error> {
    let file = fs::File::open(wheel).map_err(io_err(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| Qm9Error::Damaged {
        path: wheel.into(),
        reason: e.to_string(),
    })?;
    let mut data = Qm9::default();
    for part in PARTS {
        let entry = archive.by_name(part).map_err(|e| Qm9Error::Damaged {
            path: wheel.into(),
            reason: format!("{part}: {e}"),
        })?;
        parse_part(part, io::BufReader::new(entry), &mut data)?;
    }
    if data.len() != MOLECULES {
        return Err(Qm9Error::Mismatch {
            file: WHEEL.into(),
            what: "molecule count",
            expected: MOLECULES.to_string(),
            found: data.len().to_string(),
        });
    }
    Ok(data)
}

fn verify_cache(path: &Path) -> Result<(), Qm9Error> {
    let sha = digest::sha256_file(path).map_err(io_err(path))?;
    if sha != CACHE_SHA256 {
        return Err(Qm9Error::Damaged {
            path: path.into(),
            reason: format!("SHA-256 {sha}, expected {CACHE_SHA256}"),
        });
    }
    Ok(())
}

/// Loads the fetched data set from `cache`, verified.
pub fn load(cache: &Path) -> Result<Qm9, Qm9Error> {
    let path = dir(cache).join(CACHE_FILE);
    if !path.exists() {
        return Err(Qm9Error::NotFetched {
            dir: cache.to_path_buf(),
        });
    }
    verify_cache(&path)?;
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    Qm9::from_bytes(&bytes).map_err(|reason| Qm9Error::Damaged { path, reason })
}

/// The standard split as row positions in a [`Qm9`] (train, valid, test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qm9Split {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    pub test: Vec<usize>,
}

/// The split's gdb index lists, as shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
    pub test: Vec<u32>,
}

/// The split as shipped (gdb indices).
pub fn split_indices() -> Result<SplitIndices, Qm9Error> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(SPLIT)
        .read_to_string(&mut text)
        .map_err(|e| Qm9Error::Split(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Qm9Error::Split(e.to_string()))?;
    let list = |key: &str| -> Result<Vec<u32>, Qm9Error> {
        value[key]
            .as_array()
            .ok_or_else(|| Qm9Error::Split(format!("no `{key}` list")))?
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|v| v as u32)
                    .ok_or_else(|| Qm9Error::Split(format!("a non-integer in `{key}`")))
            })
            .collect()
    };
    Ok(SplitIndices {
        train: list("train")?,
        valid: list("valid")?,
        test: list("test")?,
    })
}

/// Maps the shipped split onto `data`'s rows; every index must be present.
pub fn standard_split(data: &Qm9) -> Result<Qm9Split, Qm9Error> {
    let SplitIndices { train, valid, test } = split_indices()?;
    let rows = |list: Vec<u32>| -> Result<Vec<usize>, Qm9Error> {
        list.into_iter()
            .map(|i| {
                data.index
                    .binary_search(&i)
                    .map_err(|_| Qm9Error::Split(format!("gdb index {i} is not in the data")))
            })
            .collect()
    };
    Ok(Qm9Split {
        train: rows(train)?,
        valid: rows(valid)?,
        test: rows(test)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "XYZ_file,Index,N_atoms,Elements,XYZ_Ang,Dipole_debye,Polarizability_bohr3,HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,InternalEnergy_0K_au,InternalEnergy_298K_au,Enthalphy_298K_au,GibbsFreeEnergy_298K_au,Heatcapacity_Cv_cal_mol_K
dsgdb9nsd_000001.xyz,1,2,\"['C','H']\",\"[[0.5995394918,0.,1.],[-0.1,2.5,3]]\",0.,13.21,-0.3877,0.1171,0.5048,35.3641,0.044749,-40.47893,-40.476062,-40.475117,-40.498597,6.469
dsgdb9nsd_000003.xyz,3,1,\"['O']\",\"[[1,2,3]]\",1.8511,9.46,-0.2928,0.0687,0.3615,19.0002,0.021375,-76.404702,-76.401867,-76.400922,-76.422349,6.002
";

    #[test]
    fn parses_rows_with_quoted_lists_and_bare_decimal_points() {
        let mut data = Qm9::default();
        parse_part("test.csv", CSV.as_bytes(), &mut data).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data.index, vec![1, 3]);
        assert_eq!(data.atomic_numbers, vec![6, 1, 8]);
        assert_eq!(
            data.positions[0],
            ["0.5995394918".parse::<f32>().unwrap(), 0.0, 1.0]
        );
        assert_eq!(data.atoms(1), 2..3);
        assert_eq!(data.target(0, Target::Alpha), 13.21);
        assert_eq!(data.target(1, Target::Cv), 6.002);
        // The binary form round-trips.
        assert_eq!(Qm9::from_bytes(&data.to_bytes()).unwrap(), data);
        assert!(
            Qm9::from_bytes(&data.to_bytes()[..30])
                .unwrap_err()
                .contains("ends early")
        );
    }

    #[test]
    fn bad_rows_name_the_row_and_the_problem() {
        let mut data = Qm9::default();
        let e = parse_part(
            "p.csv",
            CSV.replace("['O']", "['Xe']").as_bytes(),
            &mut data,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("p.csv, row 3") && e.contains("unknown element `Xe`"),
            "{e}"
        );
        let mut data = Qm9::default();
        let e = parse_part("p.csv", CSV.replace(",3,1,", ",3,2,").as_bytes(), &mut data)
            .unwrap_err()
            .to_string();
        assert!(e.contains("N_atoms 2, but 1 elements"), "{e}");
        let mut data = Qm9::default();
        let e = parse_part("p.csv", CSV.replace(",3,1,", ",1,1,").as_bytes(), &mut data)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sorted"), "{e}");
        let e = "qm9-gap".parse::<Target>().unwrap_err();
        assert!(e.contains("use one of mu, alpha"), "{e}");
    }

    #[test]
    fn the_shipped_split_is_cormorants() {
        let SplitIndices { train, valid, test } = split_indices().unwrap();
        assert_eq!(
            (train.len(), valid.len(), test.len()),
            (100_000, 17_748, 13_083)
        );
        // E3-FACTS.md: the first indices and the sums of each list.
        assert_eq!(&train[..5], &[133161, 70467, 8226, 26624, 20504]);
        let sum = |v: &[u32]| v.iter().map(|&i| i as u64).sum::<u64>();
        assert_eq!(
            (sum(&train), sum(&valid), sum(&test)),
            (6_687_686_303, 1_182_449_014, 874_554_425)
        );
        let mut all: Vec<u32> = train.iter().chain(&valid).chain(&test).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            MOLECULES,
            "the three lists are disjoint and cover every molecule"
        );
    }
}
