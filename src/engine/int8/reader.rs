//! Safetensors read tensor by tensor with positioned reads instead of a memory map.
//!
//! A model quantized at load reads every f32 weight once and keeps only int8. Through a
//! memory map each page read stays mapped, and counted in the process's resident memory,
//! until the map is dropped after loading: 300 MB for opus-mt-en-ru, more than the int8
//! model itself. Read into a buffer, a tensor's f32 copy lives only until it is quantized.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The largest header accepted: opus-mt's is 30 kB; 100 MB rules out nonsense lengths.
const MAX_HEADER: u64 = 100 << 20;

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// Where one tensor lies.
struct Located {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute offset of the data in its file.
    start: u64,
}

/// Safetensors files indexed by tensor name.
pub struct SafetensorsReader {
    files: Vec<(PathBuf, File)>,
    tensors: HashMap<String, Located>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Model(format!(
        "{}: not a valid safetensors file: {what}",
        path.display()
    ))
}

impl SafetensorsReader {
    /// Opens and indexes the files, checking every tensor's extent against its file.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let mut n = [0u8; 8];
            file.read_exact_at(&mut n, 0)
                .map_err(|_| bad(path, "shorter than its header length"))?;
            let n = u64::from_le_bytes(n);
            if n > MAX_HEADER || 8 + n > len {
                return Err(bad(path, format!("header of {n} bytes in a file of {len}")));
            }
            let mut header = vec![0u8; n as usize];
            file.read_exact_at(&mut header, 8)
                .map_err(|e| Error::io(path, e))?;
            let mut raw: HashMap<String, serde_json::Value> =
                serde_json::from_slice(&header).map_err(|e| bad(path, e))?;
            raw.remove("__metadata__");
            let data_len = len - 8 - n;
            for (name, value) in raw {
                let e: Entry = serde_json::from_value(value)
                    .map_err(|err| bad(path, format!("tensor {name}: {err}")))?;
                let dtype = match e.dtype.as_str() {
                    "F32" => DType::F32,
                    "F16" => DType::F16,
                    "BF16" => DType::BF16,
                    other => {
                        return Err(bad(path, format!("tensor {name} has dtype {other}")));
                    }
                };
                let elems = e
                    .shape
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
                let bytes = elems.and_then(|n| n.checked_mul(dtype.size_in_bytes() as u64));
                let [b, end] = e.data_offsets;
                if bytes != end.checked_sub(b) || end > data_len {
                    return Err(bad(
                        path,
                        format!("tensor {name}: offsets {b}..{end} for shape {:?}", e.shape),
                    ));
                }
                tensors.insert(
                    name,
                    Located {
                        file: i,
                        dtype,
                        shape: e.shape,
                        start: 8 + n + b,
                    },
                );
            }
            files.push((path.clone(), file));
        }
        Ok(SafetensorsReader { files, tensors })
    }

    /// A `VarBuilder` reading from these files, converting to `dtype` on `device`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    fn read(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })?;
        let (path, file) = &self.files[t.file];
        let n: usize = t.shape.iter().product();
        let io = |e: std::io::Error| candle_core::Error::Msg(format!("{}: {e}", path.display()));
        let values: Vec<f32> = if t.dtype == DType::F32 {
            // Straight into the f32 buffer: a byte copy beside it would double the peak
            // for the 128 MB embedding table.
            let mut v = vec![0f32; n];
            // SAFETY: any 4 bytes are a valid f32; the slice covers exactly `v`.
            let buf = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), n * 4) };
            file.read_exact_at(buf, t.start).map_err(io)?;
            if cfg!(target_endian = "big") {
                v.iter_mut()
                    .for_each(|x| *x = f32::from_bits(u32::from_le(x.to_bits())));
            }
            v
        } else {
            let mut bytes = vec![0u8; n * 2];
            file.read_exact_at(&mut bytes, t.start).map_err(io)?;
            let pair = |c: &[u8]| [c[0], c[1]];
            if t.dtype == DType::F16 {
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes(pair(c)).to_f32())
                    .collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes(pair(c)).to_f32())
                    .collect()
            }
        };
        Tensor::from_vec(values, t.shape.as_slice(), dev)?.to_dtype(dtype)
    }
}

impl SimpleBackend for SafetensorsReader {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.read(name, dtype, dev)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors read back as candle wrote them (f32 and f16); a cut file, a header
    /// longer than the file and a tensor past the end are refused with the file named.
    #[test]
    fn reads_what_candle_writes_and_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1.5f32, -2.0], [0.25, 3.0]], &dev).unwrap();
        let b = Tensor::new(&[0.5f32, -1.0, 2.0], &dev)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let map: HashMap<String, Tensor> = [("a".to_string(), a.clone()), ("b".into(), b)].into();
        candle_core::safetensors::save(&map, &path).unwrap();
        let vb = SafetensorsReader::open(std::slice::from_ref(&path))
            .unwrap()
            .into_var_builder(DType::F32, &dev);
        let got: Vec<Vec<f32>> = vb.get((2, 2), "a").unwrap().to_vec2().unwrap();
        assert_eq!(got, vec![vec![1.5, -2.0], vec![0.25, 3.0]]);
        let got: Vec<f32> = vb.get(3, "b").unwrap().to_vec1().unwrap();
        assert_eq!(got, vec![0.5, -1.0, 2.0]);
        assert!(vb.get((3, 2), "a").is_err());
        assert!(!vb.contains_tensor("c"));

        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
        let err = SafetensorsReader::open(&[cut]).err().unwrap().to_string();
        assert!(err.contains("cut.safetensors"), "{err}");
        let mut long = bytes.clone();
        long[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let bad = dir.path().join("long.safetensors");
        std::fs::write(&bad, &long).unwrap();
        assert!(SafetensorsReader::open(&[bad]).is_err());
        std::fs::write(dir.path().join("short"), [1u8, 2]).unwrap();
        assert!(SafetensorsReader::open(&[dir.path().join("short")]).is_err());
    }
}
