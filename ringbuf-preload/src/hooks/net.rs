//! Network: `connect`, `bind`, `accept`, `accept4`, `sendto`/`sendmsg` with a destination
//! (unconnected sockets), and `getaddrinfo` (the resolver's own sockets use libc's internal
//! `__connect`, invisible to a `connect` hook, so names are recorded where they are looked up).

use core::ffi::{c_char, c_int, c_void};

use format::records::{net_op, Dns, DnsAddr, Net};
use libc::{sockaddr, socklen_t, ssize_t};
use zerocopy::IntoBytes;

use crate::real::call_real;
use crate::{emit, errno, guard, session};

/// A socket address decoded for a record: family, port, address bytes, and the path of an
/// `AF_UNIX` address.
struct Addr<'a> {
    family: u16,
    port: u16,
    addr: [u8; 16],
    path: &'a [u8],
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

fn record(op: u16, fd: c_int, result: i64, e: c_int, a: &Addr<'_>) {
    let Some((_, img)) = session::active() else {
        return;
    };
    let ev = Net {
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
    let n = (!a.path.is_empty()) as usize;
    emit::event(img, &ev, core::iter::once(a.path).take(n));
}

fn hooked() -> bool {
    session::active().is_some() && !guard::busy()
}

/// `connect(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, sa: *const sockaddr, len: socklen_t) -> c_int {
    if !hooked() {
        return call_real!(connect(fd, sa, len));
    }
    let r = call_real!(connect(fd, sa, len));
    let e = errno::get();
    // SAFETY: the caller passed len readable bytes.
    record(net_op::CONNECT, fd, r as i64, e, &unsafe {
        decode(sa, len)
    });
    errno::set(e);
    r
}

/// `bind(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, sa: *const sockaddr, len: socklen_t) -> c_int {
    if !hooked() {
        return call_real!(bind(fd, sa, len));
    }
    let r = call_real!(bind(fd, sa, len));
    let e = errno::get();
    // SAFETY: as for connect.
    record(net_op::BIND, fd, r as i64, e, &unsafe { decode(sa, len) });
    errno::set(e);
    r
}

/// Record an accept: the peer address if the caller asked for it.
///
/// # Safety
/// `sa`/`len` as accept's contract.
unsafe fn accepted(op: u16, fd: c_int, r: c_int, sa: *mut sockaddr, len: *mut socklen_t) {
    let e = errno::get();
    let a = if r >= 0 && !sa.is_null() && !len.is_null() {
        // SAFETY: the kernel wrote *len bytes (at most the caller's buffer size) at sa.
        unsafe { decode(sa, *len) }
    } else {
        // SAFETY: NULL address.
        unsafe { decode(core::ptr::null(), 0) }
    };
    record(op, fd, r as i64, e, &a);
    errno::set(e);
}

/// `accept(2)`.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, sa: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if !hooked() {
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
    if !hooked() {
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
    if sa.is_null() || !hooked() {
        return call_real!(sendto(fd, buf, n, flags, sa, len));
    }
    let r = call_real!(sendto(fd, buf, n, flags, sa, len));
    let e = errno::get();
    // SAFETY: as for connect.
    record(net_op::SENDTO, fd, r as i64, e, &unsafe { decode(sa, len) });
    errno::set(e);
    r
}

/// `sendmsg(2)`: recorded when the message names a destination.
///
/// # Safety
/// C contract.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    // SAFETY: msg is valid per contract (checked for NULL first).
    let named = !msg.is_null() && unsafe { !(*msg).msg_name.is_null() };
    if !named || !hooked() {
        return call_real!(sendmsg(fd, msg, flags));
    }
    let r = call_real!(sendmsg(fd, msg, flags));
    let e = errno::get();
    // SAFETY: msg_name holds msg_namelen bytes.
    let a = unsafe { decode((*msg).msg_name as *const sockaddr, (*msg).msg_namelen) };
    record(net_op::SENDMSG, fd, r as i64, e, &a);
    errno::set(e);
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
    let Some((_, img)) = session::active().filter(|_| !guard::busy()) else {
        return call_real!(getaddrinfo(node, service, hints, res));
    };
    let r = guard::hold(|| call_real!(getaddrinfo(node, service, hints, res)));
    let e = errno::get();
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
    let ev = Dns {
        ev: emit::header(img),
        result: r.into(),
        errno: if r == libc::EAI_SYSTEM { e } else { 0 }.into(),
        naddrs: total.into(),
        reserved: 0.into(),
    };
    // SAFETY: node and service are NULL or C strings.
    let (n, s) = unsafe { (emit::cstr(node), emit::cstr(service)) };
    emit::event(img, &ev, [n, s, addrs[..kept].as_bytes()].into_iter());
    errno::set(e);
    r
}
