//! The DISCO kernels against plain f64 loops on synthetic psi tensors shaped like real ones:
//! each output ring reads a band of nearby input rings, a few longitudes either side of its
//! own (wrapping around), and the polar rows read whole rings. Widths, downsampling in
//! longitude and odd ring counts vary; the wide grids split the fused kernels' work into
//! several parallel chunks and channel groups.

use super::reference;
use super::{DiscoShape, PsiEntry, Rings, SparsePsi};
use crate::disco;
use crate::test_util::{as_f64, relative_error, values};

const TOL: f64 = 1e-5;

fn error(got: &[f32], want: &[f64]) -> f64 {
    relative_error(got, want, 1e-30)
}

/// A banded psi from `columns` to `rows` with `kernel_size` basis functions.
fn banded_psi(rows: Rings, columns: Rings, kernel_size: usize, seed: u64) -> SparsePsi {
    let draws = values(rows.nlat * kernel_size * 5 * 9 + columns.nlon * 2, seed);
    let mut draw = draws.into_iter().cycle();
    let per_row = (0..rows.nlat).flat_map(|t| {
        let centre = t * (columns.nlat - 1) / (rows.nlat - 1).max(1);
        let polar = t == 0 || t + 1 == rows.nlat;
        let ring_band = centre.saturating_sub(2)..(centre + 3).min(columns.nlat);
        (0..kernel_size)
            .map(|_| {
                let mut row = Vec::new();
                for ring in ring_band.clone() {
                    let lons: Vec<usize> = if polar {
                        (0..columns.nlon).collect()
                    } else {
                        // -4..=4 around longitude 0, in increasing order after wrapping.
                        let mut l: Vec<usize> = (0..9)
                            .map(|d| (columns.nlon * 4 + d - 4) % columns.nlon)
                            .collect();
                        l.sort_unstable();
                        l.dedup();
                        l
                    };
                    for lon in lons {
                        let v = draw.next().unwrap();
                        // About a third of the window is empty, as at a cap's edge.
                        if v.abs() > 0.3 {
                            row.push(PsiEntry {
                                ring: ring as u32,
                                lon: lon as u32,
                                value: v,
                            });
                        }
                    }
                }
                row
            })
            .collect::<Vec<_>>()
    });
    SparsePsi::new(rows, columns, kernel_size, per_row)
}

fn rings(nlat: usize, nlon: usize) -> Rings {
    Rings { nlat, nlon }
}

#[test]
fn gather_and_scatter_match_the_plain_loops_and_are_adjoint() {
    let cases = [
        (rings(9, 20), rings(9, 20), 5),
        (rings(7, 12), rings(13, 24), 5),
        (rings(5, 12), rings(10, 36), 6),
        (rings(12, 40), rings(12, 40), 2),
        (rings(1, 8), rings(3, 8), 3),
    ];
    for (i, (rows, columns, k)) in cases.into_iter().enumerate() {
        let psi = banded_psi(rows, columns, k, i as u64 + 1);
        let planes = 3;
        let x = values(planes * columns.points(), 1);
        let y = values(planes * k * rows.points(), 2);
        let gathered = disco::gather(&psi, &x);
        let scattered = disco::scatter(&psi, &y);
        let e1 = error(&gathered, &reference::gather(&psi, &as_f64(&x)));
        let e2 = error(&scattered, &reference::scatter(&psi, &as_f64(&y)));
        assert!(
            e1 <= TOL && e2 <= TOL,
            "{rows:?} <- {columns:?}: gather {e1:.2e} scatter {e2:.2e}"
        );
        // <gather x, y> = <x, scatter y>.
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum()
        };
        let (lhs, rhs) = (dot(&gathered, &y), dot(&x, &scattered));
        assert!(
            (lhs - rhs).abs() <= 1e-5 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}

/// The fused convolution and its transpose, forward and backward: `out[b, o] = sum_(c, k)
/// w[o, c, k] gather(x[b, c])[k]` and its adjoints, in f64 from the reference gather.
#[test]
fn fused_convolutions_and_their_gradients_match_the_plain_loops() {
    let pairs = [
        (rings(24, 1200), rings(24, 1200)),
        (rings(13, 600), rings(25, 1200)),
        (rings(4, 6), rings(7, 18)),
    ];
    for (i, (rows, columns)) in pairs.into_iter().enumerate() {
        let k = 5;
        let psi = banded_psi(rows, columns, k, 10 + i as u64);
        let s = DiscoShape {
            batch: 2,
            c_in: 5,
            c_out: 3,
        };
        let (n_rows, n_cols) = (rows.points(), columns.points());
        let x = values(s.batch * s.c_in * n_cols, 11);
        let w = values(s.c_out * s.c_in * k, 12);
        let dout = values(s.batch * s.c_out * n_rows, 13);
        let y = reference::gather(&psi, &as_f64(&x));
        let mut out = vec![0.0; s.batch * s.c_out * n_rows];
        let mut dw = vec![0.0; w.len()];
        let mut dy = vec![0.0; y.len()];
        for b in 0..s.batch {
            for o in 0..s.c_out {
                for ck in 0..s.c_in * k {
                    let wv = w[o * s.c_in * k + ck] as f64;
                    let y_row = &y[(b * s.c_in * k + ck) * n_rows..][..n_rows];
                    let d_row = &dout[(b * s.c_out + o) * n_rows..][..n_rows];
                    for p in 0..n_rows {
                        out[(b * s.c_out + o) * n_rows + p] += wv * y_row[p];
                        dw[o * s.c_in * k + ck] += d_row[p] as f64 * y_row[p];
                        dy[(b * s.c_in * k + ck) * n_rows + p] += wv * d_row[p] as f64;
                    }
                }
            }
        }
        let dx = reference::scatter(&psi, &dy);
        let got = disco::conv_forward(&psi, s, &x, &w);
        let (got_dx, got_dw) = disco::conv_backward(&psi, s, &x, &w, &dout, (true, true));
        let e = [
            error(&got, &out),
            error(&got_dx.unwrap(), &dx),
            error(&got_dw.unwrap(), &dw),
        ];
        assert!(
            e.iter().all(|e| *e <= TOL),
            "{rows:?} <- {columns:?}: out, dx, dw errors {e:?}"
        );
    }
}

/// Rows whose entries are too few for a register block, and an empty row, still sum right.
#[test]
fn sparse_and_empty_rows_are_handled() {
    let (rows, columns) = (rings(3, 5), rings(3, 5));
    let per_row = vec![
        vec![PsiEntry {
            ring: 0,
            lon: 4,
            value: 0.5,
        }],
        vec![],
        vec![
            PsiEntry {
                ring: 2,
                lon: 0,
                value: -1.0,
            },
            PsiEntry {
                ring: 2,
                lon: 1,
                value: 2.0,
            },
        ],
    ];
    let psi = SparsePsi::new(rows, columns, 1, per_row);
    let x = values(columns.points(), 3);
    let got = disco::gather(&psi, &x);
    assert!(error(&got, &reference::gather(&psi, &as_f64(&x))) <= TOL);
    // Row 0 at longitude p reads x[0, (4 + p) mod 5] / 2; row 1 is zero.
    for p in 0..5 {
        assert_eq!(got[p], 0.5 * x[(4 + p) % 5]);
        assert_eq!(got[5 + p], 0.0);
    }
}

/// The transposed convolution (row grid to column grid) and its gradients:
/// `out[b, o] = scatter(sum_c w[o, c, k] x[b, c])` and its adjoints, from the reference loops.
#[test]
fn transposed_convolution_and_its_gradients_match_the_plain_loops() {
    for (i, (rows, columns)) in [(rings(7, 12), rings(13, 24)), (rings(9, 20), rings(9, 20))]
        .into_iter()
        .enumerate()
    {
        let k = 4;
        let psi = banded_psi(rows, columns, k, 20 + i as u64);
        let s = DiscoShape {
            batch: 2,
            c_in: 3,
            c_out: 4,
        };
        let (n_rows, n_cols) = (rows.points(), columns.points());
        let x = values(s.batch * s.c_in * n_rows, 21);
        let w = values(s.c_out * s.c_in * k, 22);
        let dout = values(s.batch * s.c_out * n_cols, 23);
        // mixed[b, o, k] = sum_c w[o, c, k] x[b, c]; out = scatter(mixed).
        let mut mixed = vec![0.0f64; s.batch * s.c_out * k * n_rows];
        for b in 0..s.batch {
            for o in 0..s.c_out {
                for kk in 0..k {
                    for c in 0..s.c_in {
                        let wv = w[(o * s.c_in + c) * k + kk] as f64;
                        let x_row = &x[(b * s.c_in + c) * n_rows..][..n_rows];
                        let m = &mut mixed[((b * s.c_out + o) * k + kk) * n_rows..][..n_rows];
                        for (m, xv) in m.iter_mut().zip(x_row) {
                            *m += wv * *xv as f64;
                        }
                    }
                }
            }
        }
        let out = reference::scatter(&psi, &mixed);
        // d mixed = gather(dout); dx[b, c] = sum_(o, k) w[o, c, k] d mixed[b, o, k];
        // dw[o, c, k] = sum_b <d mixed[b, o, k], x[b, c]>.
        let dmixed = reference::gather(&psi, &as_f64(&dout));
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; w.len()];
        for b in 0..s.batch {
            for o in 0..s.c_out {
                for kk in 0..k {
                    let d = &dmixed[((b * s.c_out + o) * k + kk) * n_rows..][..n_rows];
                    for c in 0..s.c_in {
                        let wi = (o * s.c_in + c) * k + kk;
                        let x_row = &x[(b * s.c_in + c) * n_rows..][..n_rows];
                        for p in 0..n_rows {
                            dx[(b * s.c_in + c) * n_rows + p] += w[wi] as f64 * d[p];
                            dw[wi] += d[p] * x_row[p] as f64;
                        }
                    }
                }
            }
        }
        let got = disco::transpose_forward(&psi, s, &x, &w);
        let (got_dx, got_dw) = disco::transpose_backward(&psi, s, &x, &w, &dout, (true, true));
        let e = [
            error(&got, &out),
            error(&got_dx.unwrap(), &dx),
            error(&got_dw.unwrap(), &dw),
        ];
        assert!(
            e.iter().all(|e| *e <= TOL),
            "{rows:?} <- {columns:?}: out, dx, dw errors {e:?}"
        );
    }
}
