//! What the supervisor reads of a traced process from `/proc`, at the stops where the process
//! cannot change under it (an exec or fork event stop), and the one write it makes: the
//! `SUBSTRATE_PARENT_IMAGE` value of a new image the preload is about to enter.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

/// A process image as `/proc` shows it.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// `/proc/PID/exe`.
    pub exe: Vec<u8>,
    /// `/proc/PID/cmdline`, split.
    pub argv: Vec<Vec<u8>>,
    /// `/proc/PID/cwd`.
    pub cwd: Vec<u8>,
    /// `SHIM_PARENT_SPAN` and `SHIM_SESSION_ID` as the image received them.
    pub shim_parent_span: Option<Vec<u8>>,
    /// As above.
    pub shim_session_id: Option<Vec<u8>>,
    /// The dynamic loader will run (`AT_BASE` is not 0), `LD_PRELOAD` names this project's
    /// library and `SUBSTRATE_RING` is set: the preload will enter the image.
    pub preload_enters: bool,
    /// Parent pid.
    pub ppid: u32,
    /// Start time (clock ticks after boot).
    pub start_time: u64,
}

/// The name of the preload library, as `LD_PRELOAD` names it (any directory).
const PRELOAD_NAME: &[u8] = b"libringbuf_preload.so";

fn link(pid: i32, what: &str) -> Vec<u8> {
    fs::read_link(format!("/proc/{pid}/{what}"))
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .unwrap_or_default()
}

/// `NAME=value` entries of a NUL-separated environment block.
fn env_value<'a>(env: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    env.split(|&b| b == 0)
        .find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")))
}

/// Fields of `/proc/PID/stat` after the command name (which may hold spaces and parens):
/// `fields[0]` is field 3 (state).
fn stat_fields(pid: i32) -> Vec<u64> {
    let Ok(s) = fs::read(format!("/proc/{pid}/stat")) else {
        return vec![];
    };
    let Some(close) = s.iter().rposition(|&b| b == b')') else {
        return vec![];
    };
    s[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .map(|f| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// The auxiliary vector's `AT_BASE` (the dynamic loader's load address; 0 without one).
fn at_base(pid: i32) -> u64 {
    let Ok(a) = fs::read(format!("/proc/{pid}/auxv")) else {
        return 0;
    };
    a.chunks_exact(16)
        .map(|c| {
            (
                u64::from_ne_bytes(c[..8].try_into().unwrap_or_default()),
                u64::from_ne_bytes(c[8..].try_into().unwrap_or_default()),
            )
        })
        .find(|&(k, _)| k == libc::AT_BASE)
        .map_or(0, |(_, v)| v)
}

/// Read the image `pid` is running.
pub fn image(pid: i32) -> ImageInfo {
    let argv = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = c.strip_suffix(&[0]).unwrap_or(&c);
            if c.is_empty() {
                vec![]
            } else {
                c.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
            }
        })
        .unwrap_or_default();
    let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let preload = env_value(&env, b"LD_PRELOAD").is_some_and(|v| {
        v.split(|&b| b == b':' || b == b' ')
            .any(|p| p.rsplit(|&b| b == b'/').next() == Some(PRELOAD_NAME))
    });
    let ring = env_value(&env, b"SUBSTRATE_RING").is_some_and(|v| !v.is_empty());
    let st = stat_fields(pid);
    ImageInfo {
        exe: link(pid, "exe"),
        argv,
        cwd: link(pid, "cwd"),
        shim_parent_span: env_value(&env, b"SHIM_PARENT_SPAN").map(<[u8]>::to_vec),
        shim_session_id: env_value(&env, b"SHIM_SESSION_ID").map(<[u8]>::to_vec),
        preload_enters: preload && ring && at_base(pid) != 0,
        // Field 4 (ppid) and field 22 (starttime).
        ppid: st.get(1).copied().unwrap_or(0) as u32,
        start_time: st.get(19).copied().unwrap_or(0),
    }
}

/// A NUL-terminated string at `addr` in `tid`'s memory, at most `max` bytes; `None` when it
/// cannot be read (a bad pointer: the call failed with `EFAULT`) or has no NUL within `max`.
pub fn read_cstr(tid: i32, addr: u64, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    let mut buf = [0u8; 256];
    while out.len() < max {
        // Never across a page boundary in one read: the next page may be unmapped.
        let room = (4096 - (at % 4096) as usize).min(buf.len());
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: room,
        };
        let remote = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: room,
        };
        // SAFETY: local is our buffer of `room` bytes; the remote side is checked by the kernel.
        let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return None;
        }
        let got = &buf[..n as usize];
        if let Some(z) = got.iter().position(|&b| b == 0) {
            out.extend_from_slice(&got[..z]);
            return Some(out);
        }
        out.extend_from_slice(got);
        at += n as u64;
    }
    None
}

/// The start time of `pid` (for a forked child, whose image is its parent's).
pub fn start_time(pid: i32) -> u64 {
    stat_fields(pid).get(19).copied().unwrap_or(0)
}

/// Whether `tid` is a thread of `tgid` (rather than a process of its own).
pub fn is_thread_of(tgid: i32, tid: i32) -> bool {
    tid != tgid && fs::metadata(format!("/proc/{tgid}/task/{tid}")).is_ok()
}

/// Set the value of `SUBSTRATE_PARENT_IMAGE` in the environment block of a stopped `pid` (a
/// new image at its exec stop) to `span`, in place. Only a value of a span's length in one of
/// its three spellings is replaced (the block cannot grow); `false` when there is none.
pub fn set_parent_image(pid: i32, span: &[u8; 16]) -> bool {
    const VAR: &[u8] = b"SUBSTRATE_PARENT_IMAGE=";
    let st = stat_fields(pid);
    // Fields 50 and 51: env_start, env_end.
    let (Some(&start), Some(&end)) = (st.get(47), st.get(48)) else {
        return false;
    };
    if end <= start || end - start > 1 << 20 {
        return false;
    }
    let Ok(mem) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
    else {
        return false;
    };
    let mut env = vec![0u8; (end - start) as usize];
    if mem.read_exact_at(&mut env, start).is_err() {
        return false;
    }
    let mut at = 0;
    for e in env.split(|&b| b == 0) {
        if let Some(v) = e.strip_prefix(VAR) {
            let text = format::ids::span_string(span);
            let plain = text[4..].replace('-', "");
            let new: &[u8] = match v.len() {
                40 => text.as_bytes(),
                36 => &text.as_bytes()[4..],
                32 => plain.as_bytes(),
                _ => return false,
            };
            let off = start + (at + VAR.len()) as u64;
            return mem.write_all_at(new, off).is_ok();
        }
        at += e.len() + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values() {
        let env = b"A=1\0LD_PRELOAD=/x/libringbuf_preload.so\0B=\0";
        assert_eq!(env_value(env, b"A"), Some(&b"1"[..]));
        assert_eq!(env_value(env, b"B"), Some(&b""[..]));
        assert_eq!(env_value(env, b"C"), None);
    }

    #[test]
    fn own_process() {
        let me = image(std::process::id() as i32);
        assert!(!me.exe.is_empty());
        assert!(!me.argv.is_empty());
        assert!(me.start_time > 0);
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
    }
}
