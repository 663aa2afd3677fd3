//! The `LD_PRELOAD` library (issue 3). Not written yet: this crate builds an inert library so
//! the workspace and its artefact names exist.
