//! The drain as a library: decode a session ring into `trace.jsonl` lines, in-process.
//!
//! - [`follow`]: [`follow::Follower`] reads a ring from its oldest record and writes lines
//!   until told to stop, publishing its position and resuming into a shared file without
//!   repeating or skipping a line ([`resume`]).
//! - [`decode`]: records to lines: muting on resume, execs waiting for their outcome, counts.
//! - [`model`]: the process model (images, their ids, working directories, descriptors,
//!   absolute paths), apart from `render`, which writes each event's members.
//! - [`event`]: the lines as typed, serde-serializable values, and a sink that hands them
//!   to a callback; [`output`]: stdout or a shared, rotated trace file.
//! - `json`: the line writer; [`liveness`]: whether writers are alive, cheaply;
//!   [`paths`]: path resolution; [`redact`]: secrets in argv;
//!   [`timefmt`]: RFC 3339 timestamps; [`rings`]: this user's ring directory and `gc`.
//!
//! The `substrate-drain` binary is a thin command line over these modules.

pub mod decode;
pub mod event;
pub mod follow;
mod json;
pub mod liveness;
pub mod model;
pub mod output;
pub mod paths;
pub mod redact;
mod render;
pub mod resume;
pub mod rings;
pub mod timefmt;
pub mod views;

use std::path::Path;

use format::RingError;

/// The session id to use: `explicit`, else the UUID of `SHIM_SESSION_ID` (bare or `ses_` +
/// UUID), else a new UUIDv7.
///
/// ```
/// let id = drain::session_id(Some("01a2375b-bfea-76d9-9481-122b5368583e")).unwrap();
/// assert_eq!(format::ids::uuid_string(&id), "01a2375b-bfea-76d9-9481-122b5368583e");
/// assert!(drain::session_id(Some("not a uuid")).is_err());
/// ```
pub fn session_id(explicit: Option<&str>) -> Result<[u8; 16], String> {
    if let Some(s) = explicit {
        return format::ids::parse_uuid(s.as_bytes()).ok_or_else(|| format!("`{s}` is not a UUID"));
    }
    Ok(std::env::var("SHIM_SESSION_ID")
        .ok()
        .and_then(|s| format::ids::parse_uuid(s.strip_prefix("ses_").unwrap_or(&s).as_bytes()))
        .unwrap_or_else(format::ids::new_uuid_v7))
}

/// One line for a ring that cannot be used.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("missing.ring");
/// let Err(e) = format::Ring::open_read_only(&path) else { unreachable!() };
/// assert!(drain::ring_error(&path, &e).starts_with(path.to_str().unwrap()));
/// ```
pub fn ring_error(path: &Path, e: &RingError) -> String {
    format!("{}: {e}", path.display())
}
