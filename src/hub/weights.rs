//! Opening a model's weights: safetensors (single or sharded, memory-mapped), PyTorch
//! pickles through candle's reader (never Python), and GGUF files.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::download::{shards_of, ModelFiles};
use crate::{Error, Result};

/// How a model's weights are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsFormat {
    /// One or more safetensors files (shards in index order).
    Safetensors(Vec<PathBuf>),
    /// One or more PyTorch pickle files.
    Pth(Vec<PathBuf>),
    /// A single GGUF file.
    Gguf(PathBuf),
}

/// Finds the weights among `files`, preferring safetensors over PyTorch pickles.
pub fn weights_format(files: &ModelFiles) -> Result<WeightsFormat> {
    if let Some(gguf) = files.gguf() {
        return Ok(WeightsFormat::Gguf(gguf.to_path_buf()));
    }
    if let Some(paths) = from_index(files, "model.safetensors.index.json")? {
        return Ok(WeightsFormat::Safetensors(paths));
    }
    let safetensors: Vec<PathBuf> = files
        .files
        .iter()
        .filter(|(n, _)| n.ends_with(".safetensors"))
        .map(|(_, p)| p.clone())
        .collect();
    if !safetensors.is_empty() {
        return Ok(WeightsFormat::Safetensors(safetensors));
    }
    if let Some(paths) = from_index(files, "pytorch_model.bin.index.json")? {
        return Ok(WeightsFormat::Pth(paths));
    }
    if let Some(p) = files.get("pytorch_model.bin") {
        return Ok(WeightsFormat::Pth(vec![p.to_path_buf()]));
    }
    Err(Error::Model(format!(
        "model {}: no weights in {} (looked for *.gguf, model.safetensors, shards with an index, pytorch_model.bin)",
        files.name,
        files.root.display()
    )))
}

/// Shards named by an index file, all of which must be among `files`.
fn from_index(files: &ModelFiles, index_name: &str) -> Result<Option<Vec<PathBuf>>> {
    let Some(index) = files.get(index_name) else {
        return Ok(None);
    };
    let dir = index_name
        .rsplit_once('/')
        .map(|(d, _)| format!("{d}/"))
        .unwrap_or_default();
    let mut paths = Vec::new();
    for shard in shards_of(index)? {
        let key = format!("{dir}{shard}");
        let path = files.get(&key).ok_or_else(|| {
            Error::Model(format!(
                "model {}: shard {key} named by {index_name} is missing",
                files.name
            ))
        })?;
        paths.push(path.to_path_buf());
    }
    Ok(Some(paths))
}

/// A `VarBuilder` over the model's safetensors (memory-mapped) or PyTorch weights.
/// GGUF models have their own loaders: use [`open_gguf`].
pub fn var_builder(
    files: &ModelFiles,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    match weights_format(files)? {
        WeightsFormat::Safetensors(paths) => {
            for p in &paths {
                check_readable(files, p)?;
            }
            // SAFETY: the files are memory-mapped read-only; svodka never writes to them
            // while mapped, and the cache replaces blobs by rename, not in place.
            unsafe { VarBuilder::from_mmaped_safetensors(&paths, dtype, device) }
                .map_err(|e| weights_error(files, &paths[0], e))
        }
        WeightsFormat::Pth(paths) => match paths.as_slice() {
            [one] => {
                check_readable(files, one)?;
                VarBuilder::from_pth(one, dtype, device).map_err(|e| weights_error(files, one, e))
            }
            many => {
                let mut tensors = std::collections::HashMap::new();
                for p in many {
                    let read: Vec<(String, Tensor)> =
                        candle_core::pickle::read_all(p).map_err(|e| weights_error(files, p, e))?;
                    tensors.extend(read);
                }
                Ok(VarBuilder::from_tensors(tensors, dtype, device))
            }
        },
        WeightsFormat::Gguf(path) => Err(Error::Model(format!(
            "model {}: {} is a GGUF file; open it with the GGUF loader, not as a VarBuilder",
            files.name,
            path.display()
        ))),
    }
}

fn check_readable(files: &ModelFiles, path: &Path) -> Result<()> {
    std::fs::metadata(path).map(|_| ()).map_err(|e| {
        Error::Model(format!(
            "model {}: cannot read weights {}: {e}",
            files.name,
            path.display()
        ))
    })
}

fn weights_error(files: &ModelFiles, path: &Path, err: candle_core::Error) -> Error {
    Error::Model(format!(
        "model {}: cannot load weights {}: {err}",
        files.name,
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn model(dir: &Path, names: &[&str]) -> ModelFiles {
        ModelFiles {
            name: "tiny".into(),
            repo: None,
            revision: None,
            root: dir.to_path_buf(),
            files: names
                .iter()
                .map(|n| (n.to_string(), dir.join(n)))
                .collect::<BTreeMap<_, _>>(),
            architecture: None,
        }
    }

    fn tensor(values: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn single_safetensors_is_preferred_over_pth() {
        let dir = tempfile::tempdir().unwrap();
        let w = tensor(&[1., 2., 3., 4., 5., 6.], (2, 3));
        candle_core::safetensors::save(
            &HashMap::from([("layer.weight".to_string(), w)]),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        std::fs::write(dir.path().join("pytorch_model.bin"), tiny_pth(&[9.0; 6])).unwrap();
        let files = model(dir.path(), &["model.safetensors", "pytorch_model.bin"]);
        assert!(matches!(
            weights_format(&files).unwrap(),
            WeightsFormat::Safetensors(_)
        ));
        let vb = var_builder(&files, DType::F32, &Device::Cpu).unwrap();
        let got = vb.get((2, 3), "layer.weight").unwrap();
        assert_eq!(
            got.to_vec2::<f32>().unwrap(),
            vec![vec![1., 2., 3.], vec![4., 5., 6.]]
        );
        assert!(
            vb.get((3, 2), "layer.weight").is_err(),
            "shape mismatch must fail"
        );
    }

    #[test]
    fn sharded_safetensors_follow_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        candle_core::safetensors::save(
            &HashMap::from([("a".to_string(), tensor(&[1., 2.], (1, 2)))]),
            d.join("s-1.safetensors"),
        )
        .unwrap();
        candle_core::safetensors::save(
            &HashMap::from([("b".to_string(), tensor(&[3., 4.], (2, 1)))]),
            d.join("s-2.safetensors"),
        )
        .unwrap();
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"s-1.safetensors","b":"s-2.safetensors"}}"#,
        )
        .unwrap();
        let files = model(
            d,
            &[
                "model.safetensors.index.json",
                "s-1.safetensors",
                "s-2.safetensors",
            ],
        );
        let vb = var_builder(&files, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            vb.get((2, 1), "b").unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![3.], vec![4.]]
        );
        assert_eq!(
            vb.get((1, 2), "a").unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![1., 2.]]
        );

        let missing = model(d, &["model.safetensors.index.json", "s-1.safetensors"]);
        let err = var_builder(&missing, DType::F32, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("s-2.safetensors"), "{err}");
    }

    #[test]
    fn pytorch_pickle_loads_without_python() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pytorch_model.bin"),
            tiny_pth(&[0.5, 1.5, 2.5, 3.5, 4.5, 5.5]),
        )
        .unwrap();
        let files = model(dir.path(), &["pytorch_model.bin"]);
        let vb = var_builder(&files, DType::F32, &Device::Cpu).unwrap();
        let got = vb.get((2, 3), "w").unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(got, vec![vec![0.5, 1.5, 2.5], vec![3.5, 4.5, 5.5]]);
    }

    #[test]
    fn gguf_is_refused_as_var_builder() {
        use candle_core::quantized::gguf_file;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let mut f = std::fs::File::create(&path).unwrap();
        let t = candle_core::quantized::QTensor::quantize(
            &tensor(&[1.0; 32], (1, 32)),
            candle_core::quantized::GgmlDType::F32,
        )
        .unwrap();
        gguf_file::write(
            &mut f,
            &[(
                "general.architecture",
                &gguf_file::Value::String("qwen2".into()),
            )],
            &[("token_embd.weight", &t)],
        )
        .unwrap();
        drop(f);
        let files = model(dir.path(), &["m.gguf"]);
        let err = var_builder(&files, DType::F32, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("GGUF"), "{err}");
    }

    #[test]
    fn no_weights_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = weights_format(&model(dir.path(), &["config.json"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no weights"), "{err}");
    }

    /// A PyTorch zip checkpoint holding one f32 tensor `w` of shape (2, 3), written by hand:
    /// a pickle of `{"w": _rebuild_tensor_v2(storage, 0, (2, 3), (3, 1), False, None)}`
    /// plus the raw storage, in an uncompressed zip, the layout `torch.save` produces.
    fn tiny_pth(values: &[f32; 6]) -> Vec<u8> {
        let mut pkl = vec![0x80, 2, b'}', b'('];
        let unicode = |pkl: &mut Vec<u8>, s: &str| {
            pkl.push(b'X');
            pkl.extend((s.len() as u32).to_le_bytes());
            pkl.extend(s.as_bytes());
        };
        unicode(&mut pkl, "w");
        pkl.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        pkl.push(b'(');
        unicode(&mut pkl, "storage");
        pkl.extend(b"ctorch\nFloatStorage\n");
        unicode(&mut pkl, "0");
        unicode(&mut pkl, "cpu");
        pkl.extend([b'K', 6, b't', b'Q']);
        pkl.extend([b'K', 0]);
        pkl.extend([b'K', 2, b'K', 3, 0x86]);
        pkl.extend([b'K', 3, b'K', 1, 0x86]);
        pkl.extend([0x89, b'N', b't', b'R', b'u', b'.']);
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        stored_zip(&[("archive/data.pkl", &pkl), ("archive/data/0", &data)])
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let (mut out, mut central) = (Vec::new(), Vec::new());
        for (name, data) in entries {
            let offset = out.len() as u32;
            let (crc, len, nlen) = (crc32(data), data.len() as u32, name.len() as u16);
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend(crc.to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend(nlen.to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(*data);
            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend(crc.to_le_bytes());
            central.extend(len.to_le_bytes());
            central.extend(len.to_le_bytes());
            central.extend(nlen.to_le_bytes());
            central.extend([0u8; 12]);
            central.extend(offset.to_le_bytes());
            central.extend(name.as_bytes());
        }
        let (cd_offset, cd_len, n) = (out.len() as u32, central.len() as u32, entries.len() as u16);
        out.extend(central);
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0u8; 4]);
        out.extend(n.to_le_bytes());
        out.extend(n.to_le_bytes());
        out.extend(cd_len.to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }
}
