//! Handing ONNX Runtime a model's external data files from memory.
//!
//! A model past protobuf's 2 GB limit keeps its weights in external files that the model
//! names by `location`. The gateway decrypts those files into locked memory and gives ONNX
//! Runtime each file's bytes by pointer (`AddExternalInitializersFromMemory`), keyed by the
//! exact location string; ONNX Runtime builds its initializers from them while the session
//! is created. Its external-data folder is set to an empty directory, so a reference the
//! gateway's scan missed finds no file instead of one next to the gateway.
//!
//! # The `unsafe` exception (reviewed)
//!
//! `ort` offers this call only for `Arc<[u8]>` buffers, which would mean a second,
//! unlocked heap copy of every weight; so it is called here directly, through `ort::api()`,
//! with pointers into the caller's locked buffer. One of the two places `unsafe_code =
//! "deny"` lets through (root `Cargo.toml`). What makes it sound:
//!
//! - the name strings (`CString`s), the pointer and length arrays live until the call
//!   returns, and ONNX Runtime copies the names;
//! - ONNX Runtime only reads the buffers (the C API's `char*` is not written through), and
//!   [`with_files_in_memory`] borrows them for `'files`: the builder it returns cannot
//!   outlive them, so they are alive when the session is committed, which is when ONNX
//!   Runtime reads them. Whether ONNX Runtime copies them or keeps pointing at them is
//!   settled by a test (`external_files_are_copied_when_the_session_is_built` in
//!   tests/demo_models.rs): the caller wipes the buffers right after the commit and the
//!   model must still answer exactly as Python onnxruntime does on the plaintext files.

use std::ffi::CString;
use std::marker::PhantomData;

use ort::AsPointer;
use ort::session::builder::SessionBuilder;

use crate::error::{ModelError, Result};

/// ONNX Runtime's session option naming the folder it resolves external data against when
/// a model is loaded from memory.
pub const EXTERNAL_DATA_FOLDER_KEY: &str = "session.model_external_initializers_file_folder_path";

/// A session builder that was given external files borrowed for `'files`.
pub struct WithFiles<'files> {
    builder: SessionBuilder,
    _files: PhantomData<&'files [u8]>,
}

impl WithFiles<'_> {
    /// Builds the session from the model bytes, while the files are still borrowed.
    pub fn commit_from_memory(mut self, onnx: &[u8]) -> Result<ort::session::Session> {
        Ok(self.builder.commit_from_memory(onnx)?)
    }
}

/// Gives `builder` the external data files `files` (location, bytes) from memory.
pub fn with_files_in_memory<'files>(
    mut builder: SessionBuilder,
    files: &[(&str, &'files [u8])],
) -> Result<WithFiles<'files>> {
    if files.is_empty() {
        return Ok(WithFiles { builder, _files: PhantomData });
    }
    let names = files
        .iter()
        .map(|(name, _)| CString::new(*name).map_err(|_| ModelError::Runtime("a file name holds NUL".into())))
        .collect::<Result<Vec<_>>>()?;
    let name_ptrs: Vec<*const ort::sys::os_char> = names.iter().map(|n| n.as_ptr().cast()).collect();
    let buffers: Vec<*mut std::ffi::c_char> = files.iter().map(|(_, b)| b.as_ptr().cast_mut().cast()).collect();
    let lengths: Vec<usize> = files.iter().map(|(_, b)| b.len()).collect();
    let api = ort::api();
    // SAFETY: every pointer is valid for the duration of the call (see the module
    // documentation); the four arrays have `files.len()` elements; ONNX Runtime reads the
    // buffers, never writes them, and the returned builder borrows them for `'files`. The
    // status is owned and released by `result_from_status`.
    #[allow(unsafe_code)]
    let status = unsafe {
        let status = (api.AddExternalInitializersFromMemory)(
            builder.ptr_mut(),
            name_ptrs.as_ptr(),
            buffers.as_ptr(),
            lengths.as_ptr(),
            files.len(),
        );
        ort::Error::result_from_status(status)
    };
    status.map_err(|e| ModelError::Runtime(e.to_string()))?;
    Ok(WithFiles { builder, _files: PhantomData })
}
