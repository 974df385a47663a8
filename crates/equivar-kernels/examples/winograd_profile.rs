//! Times one Winograd kernel on a layer at batch 128, for perf:
//! `cargo run --release -p equivar-kernels --example winograd_profile -- 28 forward|input|weight [f2|f4|f3x4 [CHANNELS [BATCH]]]`
//! (the forward's tiling: the one `Tiling::for_output` picks unless given; `f3x4` runs a 4x4
//! window without padding, the others a 3x3 window with padding 1; 40 channels in and out
//! and batch 128 unless given).
use equivar_kernels::conv::ConvShape;
use equivar_kernels::winograd::{self as winograd_cpu, Tiling};

/// As in the CLI: huge pages and reuse of large freed blocks.
#[global_allocator]
static ALLOCATOR: equivar_kernels::HugePageAllocator = equivar_kernels::HugePageAllocator;

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map_or(28, |a| a.parse().expect("size"));
    let pass = args.next().unwrap_or_else(|| "forward".to_string());
    let tiling = match args.next().as_deref() {
        None => Tiling::for_output(size, size),
        Some("f2") => Tiling::F2,
        Some("f4") => Tiling::F4,
        Some("f3x4") => Tiling::F3x4,
        Some(other) => panic!("tiling {other}: f2, f4 or f3x4"),
    };
    let channels: usize = args.next().map_or(40, |a| a.parse().expect("channels"));
    let batch: usize = args.next().map_or(128, |a| a.parse().expect("batch"));
    if size == 0 || channels == 0 || batch == 0 {
        eprintln!("SIZE, CHANNELS and BATCH must be at least 1");
        std::process::exit(2);
    }
    if tiling == Tiling::F3x4 && pass == "weight" {
        eprintln!("the filter gradient runs F(2x2, 3x3) on 3x3 windows only: use f2");
        std::process::exit(2);
    }
    let s = ConvShape {
        batch,
        c_in: channels,
        height: size,
        width: size,
        c_out: channels,
        kernel: tiling.window(),
        stride: 1,
        padding: if tiling == Tiling::F3x4 { 0 } else { 1 },
        dilation: 1,
    };
    let x: Vec<f32> = (0..s.input_len()).map(|i| (i % 13) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..s.weight_len()).map(|i| (i % 7) as f32 * 0.1).collect();
    let dy: Vec<f32> = (0..s.output_len()).map(|i| (i % 11) as f32 * 0.1).collect();
    let filter = winograd_cpu::WinogradFilter::new(&w, s.c_out, s.c_in);
    let bias = vec![0.0; s.c_out];
    let run = || match pass.as_str() {
        "forward" => drop(winograd_cpu::forward_tiled(
            &s,
            &x,
            &filter,
            &bias,
            |_| {},
            tiling,
        )),
        "input" => drop(winograd_cpu::input_grad(&s, &w, &dy)),
        "weight" => drop(winograd_cpu::weight_grad(&s, &x, &dy)),
        other => panic!("pass {other}: forward, input or weight"),
    };
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let repeats = 50 * (128 / batch).max(1);
        for _ in 0..repeats {
            run();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / repeats as f64;
        println!(
            "{pass} {tiling:?} {size}x{size}, {channels} -> {channels}, batch {batch}: {ms:.3} ms"
        );
    }
}
