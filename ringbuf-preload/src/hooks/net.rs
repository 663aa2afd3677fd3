//! Network: `connect`, `bind`, `accept`, `accept4`, `sendto`/`sendmsg` with a destination
//! (unconnected sockets), and `getaddrinfo` (the resolver's own sockets use libc's internal
//! `__connect`, invisible to a `connect` hook, so names are recorded where they are looked up).
//!
//! Addresses are read after the real call, and only as far as its outcome shows them readable
//! ([`readable::after`]): the kernel looks up the descriptor (`EBADF`, `ENOTSOCK`) and checks the
//! length (`EINVAL`) before it copies an address in, and says `EFAULT` when it cannot. A refused
//! address is recorded as family 0 and flagged; one whose outcome proves nothing is probed first.

use core::ffi::{c_char, c_int, c_void};

use format::records::{ev_flags, net_op, Dns, DnsAddr, Net};
use libc::{sockaddr, socklen_t, ssize_t};
use zerocopy::IntoBytes;

use crate::cstr::cstr;
use crate::readable::{self, Arg, Pages, Proof, Str};
use crate::real::call_real;
use crate::{emit, errno, guard, lifecycle};

/// A socket address decoded for a record: family, port, address bytes, and the path of an
/// `AF_UNIX` address.
struct Addr<'a> {
    family: u16,
    port: u16,
    addr: [u8; 16],
    path: &'a [u8],
    /// The address was not read (refused by the kernel, or not readable).
    unreadable: bool,
}

/// Decode `len` bytes at `sa` (NULL or too short: family 0).
///
/// # Safety
/// `sa` is NULL or valid for reads of `len` bytes.
unsafe fn decode<'a>(sa: *const sockaddr, len: socklen_t) -> Addr<'a> {
    let mut a = Addr {
        family: 0,
        port: 0,
        addr: [0; 16],
        path: b"",
        unreadable: false,
    };
    let len = len as usize;
    if sa.is_null() || len < 2 {
        return a;
    }
    // SAFETY: at least the family field is readable.
    a.family = unsafe { (*sa).sa_family };
    match a.family as c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: long enough for sockaddr_in; read unaligned.
            let s = unsafe { (sa as *const libc::sockaddr_in).read_unaligned() };
            a.port = u16::from_be(s.sin_port);
            a.addr[..4].copy_from_slice(&s.sin_addr.s_addr.to_ne_bytes());
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: long enough for sockaddr_in6.
            let s = unsafe { (sa as *const libc::sockaddr_in6).read_unaligned() };
            a.port = u16::from_be(s.sin6_port);
            a.addr = s.sin6_addr.s6_addr;
        }
        libc::AF_UNIX => {
            let max = len.min(size_of::<libc::sockaddr_un>()) - 2;
            // SAFETY: `max` bytes after the family are inside the caller's buffer.
            let p = unsafe { core::slice::from_raw_parts((sa as *const u8).add(2), max) };
            // A pathname ends at its NUL; an abstract name (leading NUL) uses every byte.
            a.path = if p.first() == Some(&0) {
                p
            } else {
                p.split(|&c| c == 0).next().unwrap_or(b"")
            };
        }
        _ => {}
    }
    a
}

/// The address a call that returned was given, decoded as far as the call's outcome (`proof`)
/// shows it readable. At most [`readable::SOCKADDR_MAX`] bytes are read: the kernel copies no
/// more (it refuses a longer `len` with `EINVAL`, or cuts a `sendmsg` name to that).
///
/// # Safety
/// `sa` and `len` as the program passed them (any values).
unsafe fn addr_after<'a>(sa: *const sockaddr, len: socklen_t, proof: Proof) -> Addr<'a> {
    let n = (len as usize).min(readable::SOCKADDR_MAX);
    let ok = sa.is_null()
        || match proof {
            Proof::Read => true,
            Proof::Refused => false,
            Proof::Unknown => Pages::new().range(sa as usize, n),
        };
    if ok {
        // SAFETY: NULL, or `n` bytes the kernel copied or the probe found readable.
        unsafe { decode(sa, n as socklen_t) }
    } else {
        // SAFETY: NULL address.
        let mut a = unsafe { decode(core::ptr::null(), 0) };
        a.unreadable = true;
        a
    }
}

fn record(op: u16, fd: c_int, result: i64, e: c_int, a: &Addr<'_>) {
    // The hook asked `lifecycle::recording` before the call; this is the image after it.
    let Some((_, img)) = lifecycle::active() else {
        return;
    };
    let mut ev = Net {
        ev: emit::header(img),
        op: op.into(),
        family: a.family.into(),
        fd: fd.into(),
        result: (result.clamp(i32::MIN as i64, i32::MAX as i64) as i32).into(),
        errno: if result < 0 { e } else { 0 }.into(),
        port: a.port.into(),
        reserved: 0.into(),
        addr: a.addr,
        reserved2: 0.into(),
    };
    if a.unreadable {
        ev.ev.flags = ev_flags::ADDR_UNREADABLE.into();
    }
    let n = (!a.path.is_empty()) as usize;
    emit::event(img, &ev, core::iter::once(a.path).take(n));
}

/// `connect(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, sa: *const sockaddr, len: socklen_t) -> c_int {
    if lifecycle::recording().is_none() {
        return call_real!(connect(fd, sa, len));
    }
    let r = call_real!(connect(fd, sa, len));
    let e = errno::Saved::now();
    // SAFETY: the proof is the outcome of the call `sa` was given to.
    let a = unsafe { addr_after(sa, len, readable::after(Arg::Addr, r < 0, e.get())) };
    record(net_op::CONNECT, fd, r as i64, e.get(), &a);
    r
}

/// `bind(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, sa: *const sockaddr, len: socklen_t) -> c_int {
    if lifecycle::recording().is_none() {
        return call_real!(bind(fd, sa, len));
    }
    let r = call_real!(bind(fd, sa, len));
    let e = errno::Saved::now();
    // SAFETY: as for connect.
    let a = unsafe { addr_after(sa, len, readable::after(Arg::Addr, r < 0, e.get())) };
    record(net_op::BIND, fd, r as i64, e.get(), &a);
    r
}

/// Record an accept: the peer address if the caller asked for it.
///
/// # Safety
/// `sa`/`len` as accept's contract.
unsafe fn accepted(op: u16, fd: c_int, r: c_int, sa: *mut sockaddr, len: *mut socklen_t) {
    let e = errno::Saved::now();
    let a = if r >= 0 && !sa.is_null() && !len.is_null() {
        // SAFETY: the kernel wrote *len bytes (at most the caller's buffer size) at sa.
        unsafe { decode(sa, *len) }
    } else {
        // SAFETY: NULL address.
        unsafe { decode(core::ptr::null(), 0) }
    };
    record(op, fd, r as i64, e.get(), &a);
}

/// `accept(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, sa: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if lifecycle::recording().is_none() {
        return call_real!(accept(fd, sa, len));
    }
    let r = call_real!(accept(fd, sa, len));
    // SAFETY: forwarded.
    unsafe { accepted(net_op::ACCEPT, fd, r, sa, len) };
    r
}

/// `accept4(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    sa: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    if lifecycle::recording().is_none() {
        return call_real!(accept4(fd, sa, len, flags));
    }
    let r = call_real!(accept4(fd, sa, len, flags));
    // SAFETY: forwarded.
    unsafe { accepted(net_op::ACCEPT4, fd, r, sa, len) };
    r
}

/// `sendto(2)`: recorded when it names a destination.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: usize,
    flags: c_int,
    sa: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    if sa.is_null() || lifecycle::recording().is_none() {
        return call_real!(sendto(fd, buf, n, flags, sa, len));
    }
    let r = call_real!(sendto(fd, buf, n, flags, sa, len));
    let e = errno::Saved::now();
    // SAFETY: as for connect.
    let a = unsafe { addr_after(sa, len, readable::after(Arg::Addr, r < 0, e.get())) };
    record(net_op::SENDTO, fd, r as i64, e.get(), &a);
    r
}

/// `sendmsg(2)`: recorded when the message names a destination. The message is read only
/// after the call, as far as its outcome shows it readable; one the kernel refused is not
/// recorded (whether it named a destination cannot be known).
///
/// # Safety
/// C contract (any pointer: read only as far as shown readable).
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    if msg.is_null() || lifecycle::recording().is_none() {
        return call_real!(sendmsg(fd, msg, flags));
    }
    let r = call_real!(sendmsg(fd, msg, flags));
    let e = errno::Saved::now();
    let proof = readable::after(Arg::Addr, r < 0, e.get());
    let header_ok = match proof {
        Proof::Read => true,
        Proof::Refused => false,
        Proof::Unknown => Pages::new().range(msg as usize, size_of::<libc::msghdr>()),
    };
    if header_ok {
        // SAFETY: the header was copied in by the kernel or found readable.
        let (name, len) = unsafe { ((*msg).msg_name, (*msg).msg_namelen) };
        if !name.is_null() {
            // SAFETY: the proof is the outcome of the call the name was given to.
            let a = unsafe { addr_after(name as *const sockaddr, len, proof) };
            record(net_op::SENDMSG, fd, r as i64, e.get(), &a);
        }
    }
    r
}

/// At most this many resolved addresses are kept per lookup.
const DNS_ADDRS: usize = 16;

/// `getaddrinfo(3)`: the name and service looked up, the result, and the addresses.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> c_int {
    let Some((_, img)) = lifecycle::recording() else {
        return call_real!(getaddrinfo(node, service, hints, res));
    };
    let r = guard::hold(|| call_real!(getaddrinfo(node, service, hints, res)));
    let e = errno::Saved::now();
    let mut addrs = [DnsAddr::default(); DNS_ADDRS];
    let (mut kept, mut total) = (0, 0u32);
    if r == 0 && !res.is_null() {
        // SAFETY: on success *res is a valid list owned by the caller until freeaddrinfo.
        let mut ai = unsafe { *res };
        while !ai.is_null() {
            // SAFETY: a list element.
            let a = unsafe { &*ai };
            total += 1;
            // SAFETY: ai_addr holds ai_addrlen bytes.
            let d = unsafe { decode(a.ai_addr, a.ai_addrlen) };
            let dup = addrs[..kept]
                .iter()
                .any(|x| x.family.get() == d.family && x.addr == d.addr && x.port.get() == d.port);
            if kept < DNS_ADDRS && d.family != 0 && !dup {
                addrs[kept] = DnsAddr {
                    family: d.family.into(),
                    port: d.port.into(),
                    addr: d.addr,
                };
                kept += 1;
            }
            ai = a.ai_next;
        }
    }
    let mut ev = Dns {
        ev: emit::header(img),
        result: r.into(),
        errno: if r == libc::EAI_SYSTEM { e.get() } else { 0 }.into(),
        naddrs: total.into(),
        reserved: 0.into(),
    };
    // A success read both names; a failure may have come first (a flag check), so they are
    // probed then.
    let name = |p: *const c_char| -> Option<&[u8]> {
        if r == 0 {
            // SAFETY: getaddrinfo read it in full (NULL or a C string).
            return Some(unsafe { cstr(p) });
        }
        // SAFETY: any pointer.
        match unsafe { Pages::new().cstr(p, readable::PATH_MAX) } {
            Str::Ok(b) | Str::Unterminated(b) => Some(b),
            Str::Unreadable => None,
        }
    };
    let (n, s) = (name(node), name(service));
    if n.is_none() || s.is_none() {
        ev.ev.flags = ev_flags::ADDR_UNREADABLE.into();
    }
    let (n, s) = (n.unwrap_or(b""), s.unwrap_or(b""));
    emit::event(img, &ev, [n, s, addrs[..kept].as_bytes()].into_iter());
    r
}
