//! The sparse tensor psi of a DISCO convolution, in the two layouts the kernels read: by
//! output row (t, k) for the gather, by input ring i for its adjoint.

/// The size of a grid on the sphere: `nlat` rings of `nlon` equally spaced longitudes (the
/// first at longitude 0). Where the rings lie does not matter to the kernels, only psi does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rings {
    pub nlat: usize,
    pub nlon: usize,
}

impl Rings {
    pub fn points(&self) -> usize {
        self.nlat * self.nlon
    }
}

/// One non-zero of psi in the gather layout (row (t, k)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PsiEntry {
    /// Column ring i.
    pub ring: u32,
    /// Column longitude j (for the row point at longitude 0).
    pub lon: u32,
    pub value: f32,
}

/// One non-zero of psi in the scatter layout (column ring i).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PsiColumnEntry {
    /// Row `k * nlat_rows + t` of the gathered planes `[K, nlat_rows, nlon_rows]`.
    pub row: u32,
    pub lon: u32,
    pub value: f32,
}

/// psi for a contraction from the `columns` grid to the `rows` grid with `kernel_size` basis
/// functions: row (t, k) holds the weights of the column points that row point t at
/// longitude 0 reads for basis function k; the row point at longitude p reads the same
/// points shifted by `p * stride` column longitudes.
#[derive(Clone, Debug)]
pub struct SparsePsi {
    pub rows: Rings,
    pub columns: Rings,
    /// `columns.nlon / rows.nlon`.
    pub stride: usize,
    kernel_size: usize,
    /// CSR over rows t * K + k.
    row_offsets: Vec<usize>,
    entries: Vec<PsiEntry>,
    /// CSR over column rings i.
    ring_offsets: Vec<usize>,
    column_entries: Vec<PsiColumnEntry>,
}

impl SparsePsi {
    /// psi from the entries of each row (t, k), given in the order t * K + k.
    ///
    /// # Panics
    /// If the geometry is inconsistent: the column longitudes not a multiple of the row
    /// longitudes, a row count other than `rows.nlat * kernel_size`, or an entry outside the
    /// column grid. Callers build psi from validated grids; these are programming errors.
    pub fn new(
        rows: Rings,
        columns: Rings,
        kernel_size: usize,
        per_row: impl IntoIterator<Item = Vec<PsiEntry>>,
    ) -> Self {
        assert!(
            rows.nlon > 0 && columns.nlon.is_multiple_of(rows.nlon),
            "psi: {} column longitudes are not a multiple of {} row longitudes",
            columns.nlon,
            rows.nlon
        );
        let mut row_offsets = vec![0];
        let mut entries = Vec::new();
        for row in per_row {
            entries.extend(row);
            row_offsets.push(entries.len());
        }
        assert_eq!(
            row_offsets.len() - 1,
            rows.nlat * kernel_size,
            "psi: one row per output ring and basis function"
        );
        if let Some(e) = entries
            .iter()
            .find(|e| e.ring as usize >= columns.nlat || e.lon as usize >= columns.nlon)
        {
            panic!(
                "psi: entry at ring {}, longitude {} is outside the {}x{} column grid",
                e.ring, e.lon, columns.nlat, columns.nlon
            );
        }

        // The same entries grouped by column ring, for the adjoint: a counting sort.
        let mut ring_offsets = vec![0usize; columns.nlat + 1];
        for e in &entries {
            ring_offsets[e.ring as usize + 1] += 1;
        }
        for i in 1..ring_offsets.len() {
            ring_offsets[i] += ring_offsets[i - 1];
        }
        let mut fill = ring_offsets.clone();
        let empty = PsiColumnEntry {
            row: 0,
            lon: 0,
            value: 0.0,
        };
        let mut column_entries = vec![empty; entries.len()];
        for row in 0..row_offsets.len() - 1 {
            let (t, k) = (row / kernel_size, row % kernel_size);
            for e in &entries[row_offsets[row]..row_offsets[row + 1]] {
                let slot = &mut fill[e.ring as usize];
                column_entries[*slot] = PsiColumnEntry {
                    row: (k * rows.nlat + t) as u32,
                    lon: e.lon,
                    value: e.value,
                };
                *slot += 1;
            }
        }
        SparsePsi {
            rows,
            columns,
            stride: columns.nlon / rows.nlon,
            kernel_size,
            row_offsets,
            entries,
            ring_offsets,
            column_entries,
        }
    }

    /// K, the number of basis functions.
    pub fn kernel_size(&self) -> usize {
        self.kernel_size
    }

    /// Non-zeros (for the row point at longitude 0).
    pub fn nnz(&self) -> usize {
        self.entries.len()
    }

    /// Entries of row (t, k).
    pub fn row(&self, t: usize, k: usize) -> &[PsiEntry] {
        let r = t * self.kernel_size + k;
        &self.entries[self.row_offsets[r]..self.row_offsets[r + 1]]
    }

    /// Entries of column ring i.
    pub fn ring(&self, i: usize) -> &[PsiColumnEntry] {
        &self.column_entries[self.ring_offsets[i]..self.ring_offsets[i + 1]]
    }
}
