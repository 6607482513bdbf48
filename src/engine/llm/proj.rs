//! The weight matrices of a GGUF model: block-quantized or F16 weights multiplied with
//! ggml's arithmetic on the CPU (see [`super::ggml`]) and candle's kernels on
//! accelerators, and embedding rows read from them.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::ggml::{F16MatMul, GgmlMatMul};
use crate::{Error, Result};

/// A GGUF weight matrix (block-quantized or F16, no bias): ggml's arithmetic on the CPU,
/// candle's kernels on accelerators. Unlike Marian's `DenseProj` it never holds f32
/// safetensors weights.
#[derive(Clone)]
pub(super) enum GgufProj {
    Ggml(Arc<GgmlMatMul>),
    F16(Arc<F16MatMul>),
    Candle(QMatMul),
}

impl std::fmt::Debug for GgufProj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GgufProj::Ggml(g) => write!(f, "GgmlMatMul({} rows)", g.rows()),
            GgufProj::F16(g) => write!(f, "F16MatMul({} rows)", g.rows()),
            GgufProj::Candle(q) => write!(f, "{q:?}"),
        }
    }
}

impl GgufProj {
    pub(super) fn new(t: QTensor, device: &Device) -> Result<GgufProj> {
        if device.is_cpu() {
            // Q5_0 products equal Q8_0 products (both take Q8_0 activations), and the
            // Q8_0 kernel is SIMD where candle's Q5_0 one is scalar.
            let t = if t.dtype() == GgmlDType::Q5_0 {
                q5_0_as_q8_0(&t)?
            } else {
                t
            };
            if let Some(g) = GgmlMatMul::new(&t)? {
                return Ok(GgufProj::Ggml(Arc::new(g)));
            }
            if t.dtype() == GgmlDType::F16 {
                let (n, k) = t.shape().dims2()?;
                return Ok(GgufProj::F16(Arc::new(F16MatMul::new(&t.data()?, n, k)?)));
            }
            return Ok(GgufProj::Candle(QMatMul::from_qtensor(t)?));
        }
        Ok(GgufProj::Candle(QMatMul::from_qtensor(t)?))
    }

    /// `x · wᵀ` over the last dimension of `x`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            GgufProj::Ggml(g) => host_matmul(x, g.rows(), |data, m| g.forward(data, m)),
            GgufProj::F16(g) => host_matmul(x, g.rows(), |data, m| g.forward(data, m)),
            GgufProj::Candle(q) => qmatmul(q, x),
        }
    }

    /// Rows `ids` of the matrix, dequantized (the embedding lookup).
    pub(super) fn rows(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            GgufProj::Ggml(g) => host_rows(ids, g.rows(), g.cols(), |i| g.row(i), device),
            GgufProj::F16(g) => host_rows(ids, g.rows(), g.cols(), |i| g.row(i), device),
            GgufProj::Candle(QMatMul::QTensor(q)) => Ok(q.embedding(&Tensor::new(ids, device)?)?),
            GgufProj::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => Ok(t
                .embedding(&Tensor::new(ids, device)?)?
                .to_dtype(DType::F32)?),
        }
    }
}

/// `x · wᵀ` by a host kernel `f(rows of x, number of rows)` with `n` outputs.
fn host_matmul(x: &Tensor, n: usize, f: impl Fn(&[f32], usize) -> Vec<f32>) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let k = *dims.last().expect("matmul input has a dimension");
    let m = x.elem_count() / k;
    let out = f(&x.flatten_all()?.to_vec1::<f32>()?, m);
    *dims.last_mut().expect("non-empty") = n;
    Ok(Tensor::from_vec(out, dims, x.device())?)
}

/// Rows `ids` of a host matrix of `n` rows of `k`, each given by `row`.
fn host_rows(
    ids: &[u32],
    n: usize,
    k: usize,
    row: impl Fn(usize) -> Vec<f32>,
    device: &Device,
) -> Result<Tensor> {
    let mut data = Vec::with_capacity(ids.len() * k);
    for &id in ids {
        if id as usize >= n {
            return Err(Error::Model(format!(
                "token id {id} is outside the vocabulary"
            )));
        }
        data.extend(row(id as usize));
    }
    Ok(Tensor::from_vec(data, (ids.len(), k), device)?)
}

/// Bytes of one ggml Q5_0 block (f16 scale, 32 high bits, 16 bytes of low nibbles) and
/// of one Q8_0 block (f16 scale, 32 signed bytes); both cover 32 weights.
const Q5_0_BLOCK: usize = 22;
const Q8_0_BLOCK: usize = 34;

/// Rewrites a Q5_0 tensor as Q8_0 with the same values: candle has no SIMD kernel for
/// Q5_0 (it falls back to scalar code, several times slower on the matmuls Q4_K_M
/// files keep in Q5_0), while its Q8_0 kernel uses AVX2. The 5-bit values fit a byte
/// and the block scale is kept, so every product is the same as llama.cpp's (both
/// quantize activations to Q8_0 for either weight type); the weight takes 1.5× the
/// memory.
fn q5_0_as_q8_0(t: &QTensor) -> Result<QTensor> {
    let src = t.data()?;
    if src.len() % Q5_0_BLOCK != 0 {
        return Err(Error::Model("malformed Q5_0 tensor".into()));
    }
    let mut out = Vec::with_capacity(src.len() / Q5_0_BLOCK * Q8_0_BLOCK);
    for block in src.chunks_exact(Q5_0_BLOCK) {
        let (d, rest) = block.split_at(2);
        let (qh, qs) = rest.split_at(4);
        let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
        out.extend_from_slice(d);
        let value = |low: u8, bit: u32| ((low | (((qh >> bit) & 1) as u8) << 4) as i8 - 16) as u8;
        out.extend(
            qs.iter()
                .enumerate()
                .map(|(j, q)| value(q & 0x0F, j as u32)),
        );
        out.extend(
            qs.iter()
                .enumerate()
                .map(|(j, q)| value(q >> 4, j as u32 + 16)),
        );
    }
    let storage = candle_core::quantized::QStorage::from_data(
        std::borrow::Cow::Owned(out),
        &t.device(),
        GgmlDType::Q8_0,
    )?;
    Ok(QTensor::new(storage, t.shape().clone())?)
}

/// Rows from which a CPU matmul dequantizes the weight and runs a dense GEMM.
///
/// candle's quantized CPU matmul is a row-by-row dot product that streams the whole
/// weight once per row: right for generation (one row), slow for a prompt of hundreds
/// of tokens, where dequantizing the layer's weight once and using the tiled f32 GEMM
/// is several times faster (and exact, where the quantized path rounds activations to
/// 8 bits).
const DENSE_ROWS: usize = 16;

/// `x · wᵀ` for a quantized weight, choosing the faster kernel for the batch size.
fn qmatmul(w: &QMatMul, x: &Tensor) -> Result<Tensor> {
    let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?;
    match w {
        QMatMul::QTensor(q) if rows >= DENSE_ROWS && x.device().is_cpu() => {
            Ok(QMatMul::Tensor(q.dequantize(x.device())?).forward(x)?)
        }
        _ => Ok(w.forward(x)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_0_becomes_q8_0_with_identical_values() {
        let w = Tensor::randn(0f32, 1.0, (8, 64), &Device::Cpu).unwrap();
        let q5 = QTensor::quantize(&w, GgmlDType::Q5_0).unwrap();
        let q8 = q5_0_as_q8_0(&q5).unwrap();
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        let a = q5.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        let b = q8.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    }
}
