//! The int8 linear layer against the packed f32 one on the Marian shapes: the output
//! projection (62,518 × 512) and the layer matrices, for decoder steps (16 rows greedy,
//! 64 rows with 4 beams) and encoder batches (800 rows). Prints one line per shape with
//! the median time of each and their ratio; the two alternate call by call.
//!
//! usage: `cargo bench --bench marian_int8` (threads: `RAYON_NUM_THREADS`).

use candle_core::{Device, Tensor};
use std::time::{Duration, Instant};
use svodka::engine::int8::Int8Weight;
use svodka::engine::packed::PackedWeight;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let shapes = [
        ("output projection, greedy", 16, 62_518, 512),
        ("output projection, beam 4", 64, 62_518, 512),
        ("self-attention qkv, beam 4", 64, 1536, 512),
        ("fc1, beam 4", 64, 2048, 512),
        ("fc2, beam 4", 64, 512, 2048),
        ("fc1, encoder", 800, 2048, 512),
        ("fc2, encoder", 800, 512, 2048),
    ];
    println!("| shape | rows × out × in | f32 packed ms | int8 ms | f32 / int8 |");
    println!("|---|---|---|---|---|");
    for (name, rows, out, k) in shapes {
        let w = Tensor::from_vec(values(out * k, 1), (out, k), &dev)?;
        let b = Tensor::from_vec(values(out, 2), out, &dev)?;
        let x = Tensor::from_vec(values(rows * k, 3), (rows, k), &dev)?;
        let f32w = PackedWeight::new(&w, Some(&b))?;
        let int8w = Int8Weight::new(&w, Some(&b))?;
        drop(w);
        let reps = (2_000_000_000 / (rows * out * k)).clamp(5, 200);
        let (mut tf, mut ti) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t0 = Instant::now();
            std::hint::black_box(f32w.forward(&x)?);
            tf.push(t0.elapsed());
            let t0 = Instant::now();
            std::hint::black_box(int8w.forward(&x)?);
            ti.push(t0.elapsed());
        }
        let (f, i) = (median(tf), median(ti));
        println!(
            "| {name} | {rows} × {out} × {k} | {f:.3} | {i:.3} | {:.2} |",
            f / i
        );
    }
    Ok(())
}
