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
pub struct GgufBytes(Arc<Held>);

enum Held {
    Mapped(memmap2::Mmap),
    Buffer(Vec<u8>),
}

impl GgufBytes {
    /// All the bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &*self.0 {
            Held::Mapped(m) => m,
            Held::Buffer(v) => v,
        }
    }

    /// Says that `range` will not be read for a while (its weights were copied, say
    /// repacked): a map's whole pages in it leave this process's memory, and come back
    /// from the page cache or the file if read again; a buffer keeps them.
    pub fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        if let Held::Mapped(m) = &*self.0 {
            const PAGE: usize = 4096;
            let (start, end) = (range.start.next_multiple_of(PAGE), range.end / PAGE * PAGE);
            if start < end && end <= m.len() {
                // SAFETY: the map is private and read-only, so dropping its pages loses
                // nothing: a later read finds the file's bytes, which are the bytes read
                // before (the file is not changed in place, see `GgufFile::open`). The
                // range lies inside the map. A failure only leaves the pages resident.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

impl From<Vec<u8>> for GgufBytes {
    fn from(v: Vec<u8>) -> Self {
        GgufBytes(Arc::new(Held::Buffer(v)))
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
        GgufFile::from_bytes(path, GgufBytes(Arc::new(Held::Mapped(map))))
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    /// Resident kB of the mapping that starts at `addr`, from /proc/self/smaps.
    fn resident_kb(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        while let Some(line) = lines.next() {
            let start = line.split('-').next().unwrap_or("");
            if usize::from_str_radix(start, 16).ok() == Some(addr) {
                for field in lines.by_ref() {
                    if let Some(kb) = field.strip_prefix("Rss:") {
                        return kb.trim().trim_end_matches(" kB").parse().unwrap();
                    }
                }
            }
        }
        panic!("no mapping at {addr:#x}");
    }

    #[test]
    fn released_pages_of_a_map_leave_memory_and_read_back_the_same() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
        file.write_all(&data).unwrap();
        // SAFETY: the temporary file is not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(file.as_file()) }.unwrap();
        let bytes = GgufBytes(Arc::new(Held::Mapped(map)));
        let addr = bytes.as_slice().as_ptr() as usize;
        assert_eq!(bytes.as_slice(), &data[..]);
        let before = resident_kb(addr);
        assert!(
            before >= 8 << 10,
            "{before} kB resident after reading 8 MiB"
        );
        // Whole pages inside the range go; the partial pages at its ends stay.
        bytes.release(100..(8 << 20) - 100);
        let after = resident_kb(addr);
        assert!(after <= 8, "{after} kB still resident");
        assert_eq!(bytes.as_slice(), &data[..]);
        // A buffer keeps its bytes.
        let buffer = GgufBytes::from(data.clone());
        buffer.release(0..data.len());
        assert_eq!(buffer.as_slice(), &data[..]);
    }
}
