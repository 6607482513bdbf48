//! A GGUF file opened for use: memory-mapped, its header and tensor index parsed and
//! checked, and its tensors read in place from the mapping.
//!
//! Mapping rather than reading is what makes loading cheap: the block-quantized weights
//! are used where they lie in the page cache (as llama.cpp does), so loading does not
//! copy them, and a second run of the same model finds them already in memory.

use std::io::Cursor;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::QTensor;
use candle_core::Device;

use crate::{Error, Result};

/// The bytes of a GGUF file, shared by every weight read from them: a memory map, or a
/// buffer (tests, fuzzing).
#[derive(Clone)]
pub struct GgufBytes(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl GgufBytes {
    /// All the bytes.
    pub fn as_slice(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl From<Vec<u8>> for GgufBytes {
    fn from(v: Vec<u8>) -> Self {
        GgufBytes(Arc::new(v))
    }
}

/// A parsed, checked GGUF file and its bytes.
pub struct GgufFile {
    /// Where the file is (named in errors).
    pub path: PathBuf,
    /// Metadata and tensor index.
    pub content: Content,
    bytes: GgufBytes,
}

impl GgufFile {
    /// Maps the file at `path` and reads and checks its header.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only. Changing the file while it is mapped would
        // change the weights under the model (llama.cpp maps its models the same way);
        // the Hub cache replaces files by rename, never in place. Every tensor's extent
        // is checked against the file's length before it is read.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        GgufFile::from_bytes(path, GgufBytes(Arc::new(map)))
    }

    /// Reads and checks the header of a GGUF file held in `bytes`; `path` names it.
    pub fn from_bytes(path: &Path, bytes: GgufBytes) -> Result<GgufFile> {
        let content = Content::read(&mut Cursor::new(bytes.as_slice()))
            .map_err(|e| Error::bad_input(path, format!("not a readable GGUF file: {e}")))?;
        crate::engine::check::gguf(path, &content, bytes.as_slice().len() as u64)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
            bytes,
        })
    }

    /// The index entry of tensor `name`.
    pub(super) fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::Model(format!("GGUF tensor {name} is missing")))
    }

    /// The file's bytes and the byte range of tensor `name` in them.
    pub(super) fn region(&self, name: &str) -> Result<(&GgufBytes, Range<usize>)> {
        let info = self.info(name)?;
        let dtype = info.ggml_dtype;
        let start = (self.content.tensor_data_offset as usize).checked_add(info.offset as usize);
        let len = info.shape.elem_count() / dtype.block_size() * dtype.type_size();
        match start.and_then(|s| Some(s..s.checked_add(len)?)) {
            Some(r) if r.end <= self.bytes.as_slice().len() => Ok((&self.bytes, r)),
            _ => Err(Error::Model(format!(
                "GGUF tensor {name} runs past the end of the file"
            ))),
        }
    }

    /// Tensor `name` copied out of the file onto `device`.
    pub(super) fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        self.content
            .tensor(&mut Cursor::new(self.bytes.as_slice()), name, device)
            .map_err(|e| Error::Model(format!("GGUF tensor {name}: {e}")))
    }
}
