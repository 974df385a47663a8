//! Times the DISCO kernels at one grid: `cargo run --release -p equivar --example disco_profile -- 256`.
use std::time::Instant;

use equivar::kernels::{DiscoPsi, FilterBasis, Quadrature};
use equivar::space::SphereGrid;
use equivar_kernels::disco::{self as disco_cpu, DiscoShape};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(256, |s| s.parse().expect("nlat"));
    let g = SphereGrid::equiangular(n, 2 * n).expect("grid");
    let t = Instant::now();
    let basis = FilterBasis::piecewise_linear(3, 3).expect("basis");
    let psi = DiscoPsi::new(&g, &g, basis, g.latitude_spacing(), Quadrature::Columns).expect("psi");
    println!("{psi:?} built in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let widest = (0..g.nlat)
        .map(|t| (0..4).map(|k| psi.sparse.row(t, k).len()).sum::<usize>())
        .max();
    println!(
        "entries per ring: widest {widest:?}, mean {:.1}",
        psi.nnz() as f64 / g.nlat as f64
    );
    let x: Vec<f32> = (0..64 * g.points())
        .map(|i| (i % 13) as f32 * 0.1)
        .collect();
    let w: Vec<f32> = (0..16 * 16 * 4).map(|i| (i % 5) as f32 * 0.1).collect();
    let s = DiscoShape {
        batch: 4,
        c_in: 16,
        c_out: 16,
    };
    if std::env::var("ONLY_BWD").is_ok() {
        let out = disco_cpu::conv_forward(&psi.sparse, s, &x, &w);
        for _ in 0..10 {
            let _ = disco_cpu::conv_backward(&psi.sparse, s, &x, &w, &out, (true, true));
        }
        return;
    }
    let mut y = vec![0.0f32; 64 * 4 * g.points()];
    for _ in 0..3 {
        let t = Instant::now();
        disco_cpu::gather_into(&psi.sparse, &x, &mut y);
        println!(
            "gather into a warm buffer {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    for _ in 0..3 {
        let t = Instant::now();
        let y = disco_cpu::gather(&psi.sparse, &x);
        let tg = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let _ = disco_cpu::scatter(&psi.sparse, &y);
        let ts = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let out = disco_cpu::conv_forward(&psi.sparse, s, &x, &w);
        let tf = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let _ = disco_cpu::conv_backward(&psi.sparse, s, &x, &w, &out, (true, true));
        let tb = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let _ = disco_cpu::conv_backward(&psi.sparse, s, &x, &w, &out, (true, false));
        let tx = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let _ = disco_cpu::conv_backward(&psi.sparse, s, &x, &w, &out, (false, true));
        let tw = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "gather {tg:.1} ms, scatter {ts:.1} ms, conv fwd {tf:.1} ms, conv bwd {tb:.1} ms \
             (input gradient alone {tx:.1}, weight gradient alone {tw:.1})"
        );
    }
}
