//! `attend._attend`: the native half of the Python package `attend` (the Python half, in
//! `python/attend/`, turns what this returns into numpy arrays and result objects).
//!
//! | file | what |
//! |---|---|
//! | `run.rs` | engine work off the GIL, on the kernels' pool, stopped by Ctrl-C |
//! | `translator.rs` | `Engine`: a loaded run that translates and explains |
//! | `training.rs` | `train`: a run from a TOML file or a dict, its progress handed to Python |
//! | `pictures.rs` | heat maps (PNG, SVG, files) by attend's renderer, and `score` |
//!
//! Errors of the engine are raised as `AttendError` with the command line's message (the whole
//! chain of causes, as `attend` prints it after `error:`).

mod pictures;
mod run;
mod training;
mod translator;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _attend,
    AttendError,
    PyException,
    "An error of the engine (a run that cannot be loaded, bad config, …), with the message the command line prints."
);

/// The command line's message for an engine error, as an `AttendError`.
pub(crate) fn engine_error(e: anyhow::Error) -> PyErr {
    AttendError::new_err(format!("{e:#}"))
}

/// Sets the number of threads the kernels use (0: all cores). The pool is sized once per
/// process, to the first count asked for; later calls can lower the count, not raise it.
#[pyfunction]
fn set_threads(threads: usize) {
    if threads > 0 {
        tensor::threads::set_threads(threads);
    }
}

/// Threads the kernels use.
#[pyfunction]
fn threads() -> usize {
    tensor::threads::threads()
}

#[pymodule]
fn _attend(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The engine's allocation pattern (as the command line sets it): freed tensor memory is kept
    // for the next step instead of being returned to the kernel.
    attend::allocator::retain_freed_memory();
    m.add("AttendError", m.py().get_type::<AttendError>())?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads, m)?)?;
    m.add_class::<translator::Engine>()?;
    m.add_function(wrap_pyfunction!(training::train, m)?)?;
    m.add_function(wrap_pyfunction!(pictures::heat_map, m)?)?;
    m.add_function(wrap_pyfunction!(pictures::save_heat_map, m)?)?;
    m.add_function(wrap_pyfunction!(pictures::score, m)?)?;
    Ok(())
}
