use super::*;
use candle_core::Device;

fn data(n: usize, seed: u64) -> Vec<f32> {
    crate::testing::Lcg::new(seed).values(n)
}

/// `x · wᵀ + b` in f64 from the quantized values themselves: what the integer kernels
/// must give up to the f32 epilogue's three roundings.
fn quantized_reference(x: &[f32], rows: usize, w: &Int8Weight) -> Vec<f64> {
    let k = w.in_dim;
    let mut qx = vec![0i8; k];
    let mut wrow = vec![0f32; k];
    let mut y = vec![0f64; rows * w.out_dim];
    for r in 0..rows {
        let sx = quantize_row(&x[r * k..(r + 1) * k], &mut qx);
        for o in 0..w.out_dim {
            w.row_into(o, &mut wrow);
            let s: f64 = qx
                .iter()
                .zip(&wrow)
                .map(|(&q, &v)| q as f64 * sx as f64 * v as f64)
                .sum();
            y[r * w.out_dim + o] = s + w.bias[o] as f64;
        }
    }
    y
}

fn run(w: &Int8Weight, isa: Isa, x: &[f32], rows: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; rows * w.out_dim];
    // SAFETY: `isa` comes from `Isa::available`; `y` holds rows × out_dim floats.
    unsafe { w.compute_with(isa, x, rows, y.as_mut_ptr()) };
    y
}

/// Every tile shape (pairs, single panels, partial panels, row remainders, inputs not a
/// multiple of 4, blocks of rows, the threaded split) on every kernel set of this CPU:
/// the same bits as the portable kernel, which computes the quantized product.
#[test]
fn every_kernel_matches_portable_bit_for_bit() {
    let shapes = [
        (1, 1, 1),
        (3, 17, 5),
        (13, 40, 33),
        (25, 70, 64),
        (64, 1000, 512),
        (30, 2100, 301),
        (200, 96, 130),
        (7, 48, 2048),
    ];
    for &(rows, out, k) in &shapes {
        let mut w = data(out * k, 1 + out as u64);
        // One row of zeros: scale 0 must give exact zeros, not NaN.
        w[..k].iter_mut().for_each(|v| *v = 0.0);
        let b = data(out, 7);
        let mut x = data(rows * k, 3 + rows as u64);
        // Outliers make the per-row scales differ a lot between rows.
        x[0] = 40.0;
        let weight = Int8Weight::from_rows(&w, out, k, Some(&b)).unwrap();
        let portable = run(&weight, Isa::Portable, &x, rows);
        let want = quantized_reference(&x, rows, &weight);
        for (i, (&a, &e)) in portable.iter().zip(&want).enumerate() {
            let tol = 1e-5 * (1.0 + e.abs());
            assert!(
                (a as f64 - e).abs() < tol,
                "{rows}×{out}×{k} [{i}]: {a} vs {e}"
            );
        }
        for isa in Isa::available() {
            let got = run(&weight, isa, &x, rows);
            let same = got
                .iter()
                .zip(&portable)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?} differs from portable at {rows}×{out}×{k}");
        }
    }
}

/// The forward op on a tensor: shapes, the detected kernels, and the error of int8
/// against the float product within what per-row int8 allows.
#[test]
fn forward_is_close_to_the_float_product() {
    let (rows, out, k) = (9, 50, 256);
    let w = data(out * k, 11);
    let b = data(out, 12);
    let x = data(rows * k, 13);
    let dev = Device::Cpu;
    let wt = Tensor::from_vec(w.clone(), (out, k), &dev).unwrap();
    let bt = Tensor::from_vec(b.clone(), out, &dev).unwrap();
    let weight = Int8Weight::new(&wt, Some(&bt)).unwrap();
    let xt = Tensor::from_vec(x.clone(), (1, rows, k), &dev).unwrap();
    let y = weight.forward(&xt).unwrap();
    assert_eq!(y.dims(), &[1, rows, out]);
    let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(y, run(&weight, Isa::Portable, &x, rows));
    let amax = |v: &[f32]| v.iter().fold(0f32, |m, &a| m.max(a.abs()));
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        let ex = amax(xr) / 254.0;
        for o in 0..out {
            let wr = &w[o * k..(o + 1) * k];
            let ew = amax(wr) / 254.0;
            let exact: f64 = xr
                .iter()
                .zip(wr)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
                + b[o] as f64;
            // Each operand is off by at most half a quantization step, amax / 254.
            let bound = k as f64 * (amax(xr) * ew + amax(wr) * ex + ex * ew) as f64 + 1e-4;
            let err = (y[r * out + o] as f64 - exact).abs();
            assert!(err < bound, "{r},{o}: {err} > {bound}");
        }
    }
    let mut row = vec![0f32; k];
    weight.row_into(3, &mut row);
    for (a, e) in row.iter().zip(&w[3 * k..4 * k]) {
        assert!((a - e).abs() <= 0.5 / 127.0 * 0.51, "{a} vs {e}");
    }
}

#[test]
fn quantize_row_is_symmetric_and_saturates_at_127() {
    let mut q = [0i8; 5];
    let s = quantize_row(&[1.0, -2.0, 0.5, 2.0, 0.0], &mut q);
    assert_eq!(s, 2.0 / 127.0);
    assert_eq!(q, [64, -127, 32, 127, 0]);
    assert_eq!(quantize_row(&[0.0; 5], &mut q), 0.0);
    assert_eq!(q, [0; 5]);
}

#[test]
fn rejects_bad_weights() {
    assert!(Int8Weight::from_rows(&[1.0, f32::NAN], 1, 2, None).is_err());
    assert!(Int8Weight::from_rows(&[1.0; 3], 1, 2, None).is_err());
    assert!(Int8Weight::from_rows(&[], 0, 2, None).is_err());
    let dev = Device::Cpu;
    let wt = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let bt = Tensor::zeros(3, DType::F32, &dev).unwrap();
    assert!(Int8Weight::new(&wt, Some(&bt)).is_err());
}
