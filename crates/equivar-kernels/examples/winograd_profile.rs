//! Times one Winograd F(2x2, 3x3) kernel on a 40 -> 40 layer at batch 128, for perf:
//! `cargo run --release -p equivar-kernels --example winograd_profile -- 28 forward|input|weight`.
use equivar_kernels::conv::ConvShape;
use equivar_kernels::winograd as winograd_cpu;

/// As in the CLI: huge pages and reuse of large freed blocks.
#[global_allocator]
static ALLOCATOR: equivar_kernels::HugePageAllocator = equivar_kernels::HugePageAllocator;

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map_or(28, |a| a.parse().expect("size"));
    let pass = args.next().unwrap_or_else(|| "forward".to_string());
    let s = ConvShape {
        batch: 128,
        c_in: 40,
        height: size,
        width: size,
        c_out: 40,
        kernel: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
    };
    let x: Vec<f32> = (0..s.input_len()).map(|i| (i % 13) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..s.weight_len()).map(|i| (i % 7) as f32 * 0.1).collect();
    let dy: Vec<f32> = (0..s.output_len()).map(|i| (i % 11) as f32 * 0.1).collect();
    let filter = winograd_cpu::WinogradFilter::new(&w, s.c_out, s.c_in);
    let bias = vec![0.0; s.c_out];
    let run = || match pass.as_str() {
        "forward" => drop(winograd_cpu::forward(&s, &x, &filter, &bias, |_| {})),
        "input" => drop(winograd_cpu::input_grad(&s, &w, &dy)),
        "weight" => drop(winograd_cpu::weight_grad(&s, &x, &dy)),
        other => panic!("pass {other}: forward, input or weight"),
    };
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let repeats = 50;
        for _ in 0..repeats {
            run();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / repeats as f64;
        println!("{pass} {size}x{size}, 40 -> 40, batch 128: {ms:.2} ms");
    }
}
