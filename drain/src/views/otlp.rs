//! `substrate-drain export --format otlp`: the trace as OpenTelemetry spans, sent over OTLP/HTTP
//! (protobuf, `POST …/v1/traces`) to a Collector, Jaeger, Tempo, Honeycomb or anything that
//! speaks OTLP.
//!
//! - a session is a trace (its UUID's 16 bytes are the trace id); each process image a span of
//!   kind INTERNAL, named after its program, from its `process_start` to its `process_exit`
//!   (or to the next image's start when its pid exec'd, or to the trace's last event when the
//!   trace has no end for it), with the process attributes of the OpenTelemetry semantic
//!   conventions and `substrate.*` ones, status ERROR when it exited non-zero or was killed;
//! - its `parent_image` is its parent span; a root's parent is the enclosing substrate span
//!   (`parent_span`), or the `TRACEPARENT` of the exporter's environment (whose trace id then
//!   replaces the session's);
//! - its file, network, DNS, exec, spawn and fork events are span events (at most
//!   [`MAX_EVENTS_PER_SPAN`], the rest counted in `dropped_events_count`).
//!
//! The mapping, field by field, is in `drain/SCHEMA.md` (*OTLP export*).
//!
//! Spans are sent in batches ([`Args::batch_size`] spans, at most [`MAX_REQUEST_BYTES`] of
//! protobuf each) while the trace is read: an image's span leaves once it has ended and
//! [`CLOSE_WINDOW`] more events have been read (an image may still write a few lines after its
//! `process_exit`, from `atexit` handlers), so memory holds the running images, not the trace.
//! A request is retried whole on connection errors and HTTP 429, 502, 503 and 504, after
//! `Retry-After` when the endpoint sends one, else with exponential backoff, at most
//! [`ATTEMPTS`] times and within [`Args::retry_max_time`]; a batch the endpoint accepted is
//! never sent again.
//!
//! Every value taken from the trace is bounded (strings, arrays, events per span, open images)
//! and malformed ids are hashed, never refused: the trace is input from traced programs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, SpanFlags, Status,
};
use prost::Message;
use serde_json::Value;

use crate::event::Event;

/// Span events kept per span; further ones are counted in `dropped_events_count`.
pub const MAX_EVENTS_PER_SPAN: usize = 1000;
/// Protobuf bytes of span events kept per span (a second bound, for events with long paths).
pub const MAX_EVENT_BYTES_PER_SPAN: usize = 1 << 20;
/// A request carries at most this many bytes of protobuf (or one span, if larger).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
/// Attempts per request before giving up.
pub const ATTEMPTS: u32 = 5;
/// Events read after an image ended before its span is sent (late lines still join it).
pub const CLOSE_WINDOW: u64 = 10_000;
/// Images that have not ended kept at once; past this the oldest is sent as it is.
pub const MAX_OPEN: usize = 100_000;
/// Bytes of a string attribute of a span (argv elements, paths).
const MAX_STR: usize = 4096;
/// Bytes of a string attribute of a span event.
const MAX_EVENT_STR: usize = 1024;
/// Elements of an array attribute (argv).
const MAX_ARRAY: usize = 256;
/// Attributes of a span event.
const MAX_EVENT_ATTRS: usize = 32;
/// Bytes of ids and names taken from the trace or the environment.
const MAX_ID: usize = 256;
/// Bytes of an answer body read from the endpoint.
const MAX_ANSWER: u64 = 64 << 10;

/// The default endpoint (OTLP/HTTP's).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// Options of `export --format otlp`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[command(next_help_heading = "OTLP (--format otlp)")]
pub struct Args {
    /// Where to send the spans (OTLP/HTTP, protobuf): `http://HOST:PORT` or
    /// `https://HOST[:PORT]`, to which `/v1/traces` is appended when the URL has no path, or the
    /// full URL of the traces resource. Default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as it
    /// is), else $OTEL_EXPORTER_OTLP_ENDPOINT with `/v1/traces` appended, else
    /// http://localhost:4318/v1/traces. HTTPS checks the endpoint's certificate against the
    /// system's trust store ($SSL_CERT_FILE or $SSL_CERT_DIR to name others).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// An HTTP header sent with every request (repeatable), e.g. `x-honeycomb-team=KEY`; added
    /// to those of $OTEL_EXPORTER_OTLP_HEADERS and $OTEL_EXPORTER_OTLP_TRACES_HEADERS.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Spans per request (and at most 4 MiB of protobuf).
    #[arg(long, value_name = "N", default_value = "512",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Give up on a request after 5 attempts, or when the next retry would start more than SECS
    /// after its first attempt. Retries on connection errors and HTTP 429, 502, 503, 504 wait
    /// what Retry-After says, else 1, 2, 4 and 8 s (randomly up to half less), scaled down to
    /// SECS/16, /8, /4, /2 when SECS is under 16.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub retry_max_time: Duration,
}

impl Args {
    /// Whether any option differs from its default (they only mean something with `otlp`).
    pub fn given(&self) -> bool {
        self.endpoint.is_some()
            || !self.headers.is_empty()
            || self.batch_size != 512
            || self.retry_max_time != Duration::from_secs(30)
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("`{s}` is not a number of seconds (0 to 86400)")),
    }
}

/// Why an export stopped: the exit status and the one line to print.
#[derive(Debug)]
pub struct Failure {
    /// 1: the endpoint did not take a batch; 2: bad input or options.
    pub status: u8,
    /// The line, without `substrate-drain: `.
    pub message: String,
}

fn bad(message: impl Into<String>) -> Failure {
    Failure {
        status: 2,
        message: message.into(),
    }
}

/// What an export did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// The traces URL.
    pub url: String,
    /// Spans sent.
    pub spans: u64,
    /// Span events sent.
    pub events: u64,
    /// Span events left out (over a span's limits).
    pub dropped_events: u64,
    /// Requests the endpoint accepted.
    pub batches: u64,
    /// Protobuf bytes of those requests.
    pub bytes: u64,
    /// Attempts that were retried.
    pub retries: u64,
    /// Spans the endpoint said it rejected (partial success).
    pub rejected: u64,
    /// Lines of an image whose span had already been sent (not exported).
    pub late: u64,
    /// Warnings (environment values ignored), one line each.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |n: u64| if n == 1 { "" } else { "s" };
        write!(
            f,
            "exported {} span{}, {} event{} ({} dropped) in {} batch{}, {} bytes to {}",
            self.spans,
            s(self.spans),
            self.events,
            s(self.events),
            self.dropped_events,
            self.batches,
            if self.batches == 1 { "" } else { "es" },
            self.bytes,
            self.url
        )?;
        if self.retries > 0 {
            write!(
                f,
                "; {} retr{}",
                self.retries,
                if self.retries == 1 { "y" } else { "ies" }
            )?;
        }
        if self.rejected > 0 {
            write!(
                f,
                "; {} span{} rejected by the endpoint",
                self.rejected,
                s(self.rejected)
            )?;
        }
        if self.late > 0 {
            write!(f, "; {} late line{} not exported", self.late, s(self.late))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Ids.

/// FNV-1a, 64 bits.
fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a, 128 bits.
fn fnv128(b: &[u8]) -> u128 {
    b.iter()
        .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58du128, |h, &c| {
            (h ^ u128::from(c)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
        })
}

/// The OTLP span id of a substrate span (`spn_` + UUID, or a bare UUID): the UUID's last 8
/// bytes (random in a UUIDv7). Any other text (a `parent_span` is whatever the environment
/// held) gets the FNV-1a 64-bit hash of its bytes. Never all zero (an invalid span id).
///
/// ```
/// use drain::views::otlp::span_id;
/// assert_eq!(span_id("spn_01a21b7d-181e-7b25-8bd7-2f968bd9e67e"),
///            [0x8b, 0xd7, 0x2f, 0x96, 0x8b, 0xd9, 0xe6, 0x7e]);
/// assert_ne!(span_id("not a span"), [0; 8]);
/// ```
pub fn span_id(s: &str) -> [u8; 8] {
    if let Some(u) = format::ids::parse_span(s.as_bytes()) {
        let mut id = [0u8; 8];
        id.copy_from_slice(&u[8..]);
        if id != [0; 8] {
            return id;
        }
    }
    fnv64(s.as_bytes()).max(1).to_be_bytes()
}

/// The OTLP trace id of a session id (a UUID, bare or `ses_` + UUID): its 16 bytes. Any other
/// text gets the FNV-1a 128-bit hash of its bytes. Never all zero.
///
/// ```
/// use drain::views::otlp::trace_id;
/// let t = trace_id("01a21b7d-1807-7c81-9523-58a1d5340232");
/// assert_eq!(t[..4], [0x01, 0xa2, 0x1b, 0x7d]);
/// assert_eq!(t, trace_id("ses_01a21b7d-1807-7c81-9523-58a1d5340232"));
/// ```
pub fn trace_id(s: &str) -> [u8; 16] {
    let bare = s.strip_prefix("ses_").unwrap_or(s);
    match format::ids::parse_uuid(bare.as_bytes()) {
        Some(u) if u != [0; 16] => u,
        _ => fnv128(s.as_bytes()).max(1).to_be_bytes(),
    }
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A W3C `traceparent` (`00-<trace-id>-<parent-id>-<flags>`): trace id, parent span id, flags.
/// `None` when malformed, version `ff`, or an id is all zero. A later version may carry more
/// fields after the flags; they are ignored.
///
/// ```
/// let (t, p, f) = drain::views::otlp::parse_traceparent(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!((t[0], p[7], f), (0x4b, 0xb7, 1));
/// assert!(drain::views::otlp::parse_traceparent("00-0-0-0").is_none());
/// ```
pub fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let parts: Vec<&str> = s.trim().splitn(5, '-').collect();
    if parts.len() < 4 {
        return None;
    }
    let [version] = hex_bytes::<1>(parts[0])?;
    if version == 0xff || (version == 0 && parts.len() != 4) {
        return None;
    }
    let trace = hex_bytes::<16>(parts[1])?;
    let parent = hex_bytes::<8>(parts[2])?;
    let [flags] = hex_bytes::<1>(parts[3].get(..2)?)?;
    if version == 0 && parts[3].len() != 2 {
        return None;
    }
    (trace != [0; 16] && parent != [0; 8]).then_some((trace, parent, flags))
}

// ---------------------------------------------------------------------------------------------
// Configuration: endpoint, headers, environment.

/// The traces URL for `--endpoint URL`: `http://` or `https://`; when the URL has no path (or
/// just `/`), `/v1/traces` is appended, as OTLP/HTTP does for a base URL; a URL with a path is
/// used as it is.
///
/// ```
/// use drain::views::otlp::endpoint_url;
/// assert_eq!(endpoint_url("http://localhost:4318", true).unwrap(), "http://localhost:4318/v1/traces");
/// assert_eq!(endpoint_url("http://h:4318/", true).unwrap(), "http://h:4318/v1/traces");
/// assert_eq!(endpoint_url("http://h/otlp/v1/traces", true).unwrap(), "http://h/otlp/v1/traces");
/// assert_eq!(endpoint_url("https://api.example:443", true).unwrap(), "https://api.example:443/v1/traces");
/// assert!(endpoint_url("ftp://h", true).is_err());
/// ```
pub fn endpoint_url(u: &str, append: bool) -> Result<String, String> {
    if u.len() > 2048 || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "`{}` is not a URL (spaces or control characters)",
            crate::views::shorten(u, 80).escape_default()
        ));
    }
    let scheme = ["http://", "https://"]
        .into_iter()
        .find(|s| u.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)));
    let Some(scheme) = scheme else {
        return Err(format!("{u}: not an http:// or https:// URL"));
    };
    let rest = &u[scheme.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(format!(
            "{u}: credentials in the URL are not supported; use --header Authorization=..."
        ));
    }
    let port = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => Some(&authority[i + 1..]),
        _ => None,
    };
    let host = port.map_or(authority, |p| &authority[..authority.len() - p.len() - 1]);
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(format!("{u}: no host, or a bad port"));
    }
    if path.contains('#') {
        return Err(format!("{u}: a fragment (#) has no place in an endpoint"));
    }
    let path = match path {
        "" | "/" if append => "/v1/traces".to_string(),
        p if append && p.starts_with('?') => format!("/v1/traces{p}"),
        "" => "/".to_string(),
        p => p.to_string(),
    };
    Ok(format!("{scheme}{authority}{path}"))
}

/// Percent-decoding (for the `OTEL_*` lists); bytes that are not UTF-8 are replaced.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k2=v2` (W3C baggage-like, as `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`
/// are): trimmed, percent-decoded pairs; at most 64; malformed entries are skipped.
fn kv_list(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|e| {
            let (k, v) = e.split_once('=')?;
            let k = percent_decode(k.trim());
            (!k.is_empty()).then(|| (k, percent_decode(v.trim())))
        })
        .take(64)
        .collect()
}

/// A header as given: a token name, a value without control characters, and not one the
/// exporter sets itself.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 256 || !name.chars().all(token) {
        return Err(format!("`{}` is not a header name", name.escape_default()));
    }
    if value.len() > 8192 || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "the value of header {name} has control characters or is too long"
        ));
    }
    let own = [
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    ];
    if own.iter().any(|o| o.eq_ignore_ascii_case(name)) {
        return Err(format!("header {name} is set by the exporter"));
    }
    Ok(())
}

/// The parent of the roots from outside: a W3C trace context.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Remote {
    trace_id: [u8; 16],
    parent: [u8; 8],
    flags: u8,
}

/// Everything an export needs besides the trace.
#[derive(Debug, Clone)]
pub struct Config {
    /// The traces URL.
    pub url: String,
    headers: Vec<(String, String)>,
    timeout_secs: u64,
    retry_max_time: Duration,
    batch_size: usize,
    remote: Option<Remote>,
    trace_state: String,
    resource: Vec<KeyValue>,
    /// Environment values that were ignored, one line each.
    pub warnings: Vec<String>,
}

impl Config {
    /// Resolve the options against an environment (`env(name)`).
    pub fn new(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |n: &str| env(n).filter(|v| !v.trim().is_empty());
        let mut warnings = vec![];
        let url = match (&args.endpoint, var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
            (Some(u), _) => endpoint_url(u, true)?,
            (None, Some(u)) => endpoint_url(u.trim(), false)
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {e}"))?,
            (None, None) => match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(u) => {
                    let base = u.trim().trim_end_matches('/');
                    endpoint_url(&format!("{base}/v1/traces"), false)
                        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?
                }
                None => DEFAULT_ENDPOINT.to_string(),
            },
        };
        // Headers: the general list, the traces list, then --header; a later one replaces an
        // earlier one of the same name.
        let mut headers: Vec<(String, String)> = vec![];
        let mut put = |k: String, v: String| {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(&k));
            headers.push((k, v));
        };
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            for (k, v) in var(name).as_deref().map(kv_list).unwrap_or_default() {
                match check_header(&k, &v) {
                    Ok(()) => put(k, v),
                    Err(e) => warnings.push(format!("{name}: {e}: ignored")),
                }
            }
        }
        for h in &args.headers {
            let (k, v) = h
                .split_once('=')
                .ok_or_else(|| format!("--header `{h}`: not NAME=VALUE"))?;
            let (k, v) = (k.trim(), v.trim());
            check_header(k, v).map_err(|e| format!("--header: {e}"))?;
            put(k.to_string(), v.to_string());
        }
        let mut timeout_secs = 10;
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ] {
            if let Some(v) = var(name) {
                match v.trim().parse::<u64>() {
                    Ok(ms) => timeout_secs = ms.div_ceil(1000).clamp(1, 600),
                    Err(_) => warnings.push(format!(
                        "{name}: `{}` is not milliseconds: ignored",
                        crate::views::shorten(&v, 40)
                    )),
                }
                break;
            }
        }
        let remote = var("TRACEPARENT").and_then(|v| match parse_traceparent(&v) {
            Some((trace_id, parent, flags)) => Some(Remote {
                trace_id,
                parent,
                flags,
            }),
            None => {
                warnings.push(format!(
                    "TRACEPARENT `{}` is not a W3C traceparent: ignored",
                    crate::views::shorten(&v, 80).escape_default()
                ));
                None
            }
        });
        let trace_state = match (&remote, var("TRACESTATE")) {
            (Some(_), Some(s)) if s.len() <= 512 && s.chars().all(|c| (' '..='~').contains(&c)) => {
                s
            }
            _ => String::new(),
        };
        // Resource: OTEL_RESOURCE_ATTRIBUTES, then service.name (OTEL_SERVICE_NAME first).
        let mut resource: Vec<KeyValue> = vec![];
        let mut service = None;
        for (k, v) in var("OTEL_RESOURCE_ATTRIBUTES")
            .as_deref()
            .map(kv_list)
            .unwrap_or_default()
        {
            if k == "service.name" {
                service = Some(v);
            } else if !k.starts_with("substrate.") {
                resource.push(kv_str(&cut(&k, MAX_ID), &v, MAX_STR));
            }
        }
        let service = var("OTEL_SERVICE_NAME")
            .or(service)
            .unwrap_or_else(|| "substrate".into());
        resource.insert(0, kv_str("service.name", &service, MAX_ID));
        Ok(Config {
            url,
            headers,
            timeout_secs,
            retry_max_time: args.retry_max_time,
            batch_size: args.batch_size.max(1) as usize,
            remote,
            trace_state,
            resource,
            warnings,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Attribute values.

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut e = max;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    s[..e].to_string()
}

fn any(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
        ..Default::default()
    }
}

fn kv_str(key: &str, v: &str, max: usize) -> KeyValue {
    kv(key, any(any_value::Value::StringValue(cut(v, max))))
}

fn kv_int(key: &str, v: i64) -> KeyValue {
    kv(key, any(any_value::Value::IntValue(v)))
}

fn kv_bool(key: &str, v: bool) -> KeyValue {
    kv(key, any(any_value::Value::BoolValue(v)))
}

/// A string array of at most [`MAX_ARRAY`] elements; whether it was cut.
fn kv_strs<S: AsRef<str>>(key: &str, v: &[S]) -> (KeyValue, bool) {
    let values = v
        .iter()
        .take(MAX_ARRAY)
        .map(|s| AnyValue {
            value: Some(any_value::Value::StringValue(cut(s.as_ref(), MAX_STR))),
        })
        .collect();
    let cut_any =
        v.len() > MAX_ARRAY || v.iter().take(MAX_ARRAY).any(|s| s.as_ref().len() > MAX_STR);
    (
        kv(
            key,
            any(any_value::Value::ArrayValue(ArrayValue { values })),
        ),
        cut_any,
    )
}

/// A JSON member of an event as an attribute value: strings (cut), integers, floats, bools,
/// arrays of those (one level, at most [`MAX_ARRAY`]); null and objects have none.
fn json_value(v: &Value, depth: u8) -> Option<AnyValue> {
    use any_value::Value as V;
    match v {
        Value::Null | Value::Object(_) => None,
        Value::Bool(b) => any(V::BoolValue(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => any(V::IntValue(i)),
            (None, Some(u), _) => any(V::StringValue(u.to_string())),
            (None, None, Some(f)) => any(V::DoubleValue(f)),
            _ => None,
        },
        Value::String(s) => any(V::StringValue(cut(s, MAX_EVENT_STR))),
        Value::Array(a) if depth == 0 => any(V::ArrayValue(ArrayValue {
            values: a
                .iter()
                .take(MAX_ARRAY)
                .filter_map(|e| json_value(e, 1))
                .collect(),
        })),
        Value::Array(_) => None,
    }
}

/// Members every line has, which the span already says: the header but `tid` (kept, as
/// `thread.id`).
static COMMON: std::sync::LazyLock<crate::event::Skip> = std::sync::LazyLock::new(|| {
    let header = crate::event::HEADER.into_iter();
    crate::event::Skip::of(&header.filter(|m| *m != "tid").collect::<Vec<_>>())
});

/// Whether an event type becomes a span event.
fn is_span_event(t: &str) -> bool {
    t.starts_with("file_")
        || t.starts_with("net_")
        || matches!(t, "dns_lookup" | "chdir" | "exec" | "spawn" | "fork")
}

/// An event as a span event: named by its type, its own members as attributes (`tid` as
/// `thread.id`).
fn span_event(ev: &Event) -> span::Event {
    let mut attributes = vec![];
    let mut dropped = 0;
    crate::event::for_each_member(ev, *COMMON, |k, v| {
        let Some(value) = json_value(&v, 0) else {
            return;
        };
        if attributes.len() >= MAX_EVENT_ATTRS {
            dropped += 1;
            return;
        }
        let key = if k == "tid" { "thread.id" } else { k };
        attributes.push(kv(&cut(key, 64), Some(value)));
    });
    span::Event {
        time_unix_nano: ev.ts_unix_ns.max(0) as u64,
        name: cut(&ev.event_type, 64),
        attributes,
        dropped_attributes_count: dropped,
    }
}

// ---------------------------------------------------------------------------------------------
// Images to spans.

/// How an image's span ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// Its `process_exit`.
    Exit,
    /// Its pid exec'd the next image (whose start is the end).
    Exec,
    /// No end in the trace: the trace's last event (or, when sent early, its own last event).
    None,
}

/// One process image being gathered.
struct Image {
    seq: u64,
    trace_id: [u8; 16],
    resource: u32,
    pid: Option<i64>,
    name: String,
    started: bool,
    start: i64,
    last: i64,
    end: Option<(i64, End)>,
    closed: bool,
    parent: Option<[u8; 8]>,
    remote_parent: bool,
    attributes: Vec<KeyValue>,
    exit_code: Option<i64>,
    signal: Option<i64>,
    how: Option<String>,
    events: Vec<span::Event>,
    event_bytes: usize,
    dropped_events: u32,
    untraced_children: i64,
}

/// Turns events into finished spans, in the order they can be sent.
pub struct Builder {
    remote: Option<Remote>,
    trace_state: String,
    images: HashMap<u64, Image>,
    /// Images not ended, by creation order (for [`MAX_OPEN`]).
    running: BTreeMap<u64, u64>,
    /// Ended images: the event count at their end.
    ending: VecDeque<(u64, u64)>,
    /// Every image met (sent or not): its trace id.
    seen: HashMap<u64, [u8; 16]>,
    resources: Vec<(String, Option<String>)>,
    resource_index: HashMap<(String, Option<String>), u32>,
    count: u64,
    seq: u64,
    last_ts: i64,
    /// Spans ready to send, with their resource.
    pub ready: Vec<(u32, Span)>,
    /// Lines of images already sent.
    pub late: u64,
    /// Span events left out.
    pub dropped_events: u64,
}

impl Builder {
    /// A builder for `config` (its TRACEPARENT and TRACESTATE).
    pub fn new(config: &Config) -> Builder {
        Builder {
            remote: config.remote,
            trace_state: config.trace_state.clone(),
            images: HashMap::new(),
            running: BTreeMap::new(),
            ending: VecDeque::new(),
            seen: HashMap::new(),
            resources: vec![],
            resource_index: HashMap::new(),
            count: 0,
            seq: 0,
            last_ts: i64::MIN,
            ready: vec![],
            late: 0,
            dropped_events: 0,
        }
    }

    /// The resource of a (ring, session).
    fn resource(&mut self, ev: &Event) -> u32 {
        let key = (
            cut(&ev.ring_id, MAX_ID),
            ev.session_id.as_deref().map(|s| cut(s, MAX_ID)),
        );
        if let Some(&i) = self.resource_index.get(&key) {
            return i;
        }
        let i = self.resources.len() as u32;
        self.resources.push(key.clone());
        self.resource_index.insert(key, i);
        i
    }

    /// Account one event.
    pub fn add(&mut self, ev: &Event) {
        self.count += 1;
        self.last_ts = self.last_ts.max(ev.ts_unix_ns);
        if let Some(sid) = ev.span_id.as_deref() {
            self.add_to(u64::from_be_bytes(span_id(sid)), ev);
        }
        // Spans of images that ended long enough ago.
        while let Some(&(at, id)) = self.ending.front() {
            if at.saturating_add(CLOSE_WINDOW) > self.count {
                break;
            }
            self.ending.pop_front();
            self.send(id, None);
        }
        // Too many images running at once (a hostile trace): send the oldest as it is.
        while self.images.len() > MAX_OPEN {
            let id = match self.running.pop_first() {
                Some((_, id)) => id,
                None => match self.ending.pop_front() {
                    Some((_, id)) => id,
                    None => break,
                },
            };
            self.send(id, None);
        }
    }

    fn add_to(&mut self, id: u64, ev: &Event) {
        let t = &*ev.event_type;
        if !self.images.contains_key(&id) {
            if self.seen.contains_key(&id) {
                self.late += 1;
                return;
            }
            let trace_id = match &self.remote {
                Some(r) => r.trace_id,
                None => trace_id(ev.session_id.as_deref().unwrap_or(&ev.ring_id)),
            };
            let resource = self.resource(ev);
            self.seq += 1;
            self.seen.insert(id, trace_id);
            self.running.insert(self.seq, id);
            let mut attributes = vec![];
            if let Some(pid) = ev.pid {
                attributes.push(kv_int("process.pid", pid));
            }
            if let Some(s) = &ev.span_id {
                attributes.push(kv_str("substrate.span_id", s, MAX_ID));
            }
            self.images.insert(
                id,
                Image {
                    seq: self.seq,
                    trace_id,
                    resource,
                    pid: ev.pid,
                    name: format!("pid {}", ev.pid.unwrap_or(0)),
                    started: false,
                    start: ev.ts_unix_ns,
                    last: ev.ts_unix_ns,
                    end: None,
                    closed: false,
                    parent: None,
                    remote_parent: false,
                    attributes,
                    exit_code: None,
                    signal: None,
                    how: None,
                    events: vec![],
                    event_bytes: 0,
                    dropped_events: 0,
                    untraced_children: 0,
                },
            );
            if t != "process_start" {
                // Its start is not in the trace: a root as far as this trace knows.
                let (parent, remote) = self.root_parent(ev);
                if let Some(i) = self.images.get_mut(&id) {
                    i.parent = parent;
                    i.remote_parent = remote;
                    i.attributes
                        .push(kv_bool("substrate.process_start_missing", true));
                }
            }
        }
        match t {
            "process_start" => self.start(id, ev),
            "process_exit" => {
                let Some(i) = self.images.get_mut(&id) else {
                    return;
                };
                if !matches!(i.end, Some((_, End::Exit))) {
                    i.end = Some((ev.ts_unix_ns, End::Exit));
                    i.exit_code = ev.exit_code;
                    i.signal = ev.signal;
                    i.how = ev.how.as_deref().map(|h| cut(h, 64));
                }
                self.close(id);
            }
            _ if is_span_event(t) => {
                let Some(i) = self.images.get_mut(&id) else {
                    return;
                };
                if matches!(t, "exec" | "spawn") && ev.untraced == Some(true) {
                    i.untraced_children += 1;
                }
                if i.events.len() >= MAX_EVENTS_PER_SPAN {
                    i.dropped_events += 1;
                    self.dropped_events += 1;
                } else {
                    let e = span_event(ev);
                    let len = e.encoded_len();
                    if i.event_bytes + len > MAX_EVENT_BYTES_PER_SPAN {
                        i.dropped_events += 1;
                        self.dropped_events += 1;
                    } else {
                        i.event_bytes += len;
                        i.events.push(e);
                    }
                }
            }
            _ => {}
        }
        if let Some(i) = self.images.get_mut(&id) {
            i.last = i.last.max(ev.ts_unix_ns);
        }
    }

    /// The parent of a root: the `TRACEPARENT`'s span, else the enclosing substrate span.
    fn root_parent(&self, ev: &Event) -> (Option<[u8; 8]>, bool) {
        match (&self.remote, ev.parent_span.as_deref()) {
            (Some(r), _) => (Some(r.parent), true),
            (None, Some(p)) if !p.is_empty() => (Some(span_id(p)), true),
            _ => (None, false),
        }
    }

    fn start(&mut self, id: u64, ev: &Event) {
        if self.images.get(&id).is_none_or(|i| i.started) {
            return; // a second process_start of one span: keep the first
        }
        let pid = ev.pid;
        // The image its pid exec'd from ended here.
        let parent = ev
            .parent_image
            .as_deref()
            .map(|p| u64::from_be_bytes(span_id(p)));
        if let Some(p) = parent.filter(|p| *p != id) {
            if let Some(pi) = self.images.get_mut(&p) {
                if pi.pid == pid && pid.is_some() && pi.end.is_none() {
                    pi.end = Some((ev.ts_unix_ns, End::Exec));
                    self.close(p);
                }
            }
        }
        let trace = self.images.get(&id).map(|i| i.trace_id);
        let (parent, remote) = match parent {
            Some(p) if p != id && self.seen.get(&p).copied() == trace => {
                (Some(p.to_be_bytes()), false)
            }
            _ => self.root_parent(ev),
        };
        let Some(i) = self.images.get_mut(&id) else {
            return;
        };
        i.started = true;
        i.start = ev.ts_unix_ns;
        i.pid = pid.or(i.pid);
        i.name = cut(&crate::views::program(ev), MAX_ID);
        i.parent = parent;
        i.remote_parent = remote;
        let mut a = vec![];
        if let Some(pid) = ev.pid {
            a.push(kv_int("process.pid", pid));
        }
        if let Some(ppid) = ev.ppid {
            a.push(kv_int("process.parent_pid", ppid));
        }
        if let Some(exe) = &ev.exe {
            a.push(kv_str("process.executable.path", exe, MAX_STR));
            let base = exe.rsplit('/').next().unwrap_or(exe);
            a.push(kv_str("process.executable.name", base, MAX_STR));
        }
        let mut truncated = ev.truncated == Some(true);
        if let Some(argv) = &ev.argv {
            let (k, c) = kv_strs("process.command_args", argv);
            a.push(k);
            truncated |= c;
        }
        if let Some(cwd) = &ev.cwd {
            a.push(kv_str("process.working_directory", cwd, MAX_STR));
        }
        if let Some(s) = &ev.span_id {
            a.push(kv_str("substrate.span_id", s, MAX_ID));
        }
        if let Some(p) = &ev.parent_image {
            a.push(kv_str("substrate.parent_image", p, MAX_ID));
        }
        if let Some(p) = &ev.parent_span {
            a.push(kv_str("substrate.parent_span", p, MAX_ID));
        }
        if let Some(v) = &ev.via {
            a.push(kv_str("substrate.via", v, 64));
        }
        if ev.supervised == Some(true) {
            a.push(kv_bool("substrate.supervised", true));
        }
        if ev.redacted == Some(true) {
            a.push(kv_bool("substrate.redacted", true));
        }
        if truncated {
            a.push(kv_bool("substrate.truncated", true));
        }
        i.attributes = a;
    }

    fn close(&mut self, id: u64) {
        if let Some(i) = self.images.get_mut(&id) {
            if !i.closed {
                i.closed = true;
                self.running.remove(&i.seq);
                self.ending.push_back((self.count, id));
            }
        }
    }

    /// Move an image's span to [`Builder::ready`]; `end` for an image with no end of its own
    /// (else its last event).
    fn send(&mut self, id: u64, end: Option<i64>) {
        let Some(i) = self.images.remove(&id) else {
            return;
        };
        if !i.closed {
            self.running.remove(&i.seq);
        }
        let (end, how) = match i.end {
            Some((t, how)) => (t, how),
            None => (end.unwrap_or(i.last), End::None),
        };
        let mut attributes = i.attributes;
        if let Some(c) = i.exit_code {
            attributes.push(kv_int("process.exit.code", c));
        }
        if let Some(s) = i.signal {
            attributes.push(kv_int("substrate.signal", s));
        }
        if let Some(h) = &i.how {
            attributes.push(kv_str("substrate.exit.how", h, 64));
        }
        let ended_by = match how {
            End::Exit => "exit",
            End::Exec => "exec",
            End::None => "none",
        };
        attributes.push(kv_str("substrate.ended_by", ended_by, 64));
        if i.untraced_children > 0 {
            attributes.push(kv_int("substrate.untraced_children", i.untraced_children));
        }
        let status = match (i.signal, i.exit_code) {
            (Some(s), _) => Some(format!("killed by signal {s}")),
            (None, Some(c)) if c != 0 => Some(format!("exit code {c}")),
            _ => None,
        }
        .map(|message| Status {
            message,
            code: status::StatusCode::Error as i32,
        });
        let trace_flags = self.remote.map_or(1, |r| u32::from(r.flags));
        let mut flags = trace_flags | SpanFlags::ContextHasIsRemoteMask as u32;
        if i.remote_parent {
            flags |= SpanFlags::ContextIsRemoteMask as u32;
        }
        let span = Span {
            trace_id: i.trace_id.to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            trace_state: self.trace_state.clone(),
            parent_span_id: i.parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags,
            name: i.name,
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: i.start.max(0) as u64,
            end_time_unix_nano: end.max(i.start).max(0) as u64,
            attributes,
            dropped_attributes_count: 0,
            events: i.events,
            dropped_events_count: i.dropped_events,
            links: vec![],
            dropped_links_count: 0,
            status,
        };
        self.ready.push((i.resource, span));
    }

    /// Every image left: ended ones first, then those with no end (ending at the trace's last
    /// event), in the order they started.
    pub fn finish(&mut self) {
        while let Some((_, id)) = self.ending.pop_front() {
            self.send(id, None);
        }
        let end = self.last_ts;
        let rest: Vec<u64> = self.running.values().copied().collect();
        for id in rest {
            self.send(id, Some(end));
        }
        // Whatever is left (not running, not ending: none in practice).
        let rest: Vec<u64> = self.images.keys().copied().collect();
        for id in rest {
            self.send(id, Some(end));
        }
    }

    /// The resource of index `r`: the configured attributes, ring and session.
    fn resource_of(&self, r: u32, config: &Config) -> Resource {
        let mut attributes = config.resource.clone();
        if let Some((ring, session)) = self.resources.get(r as usize) {
            attributes.push(kv_str("substrate.ring_id", ring, MAX_ID));
            if let Some(s) = session {
                attributes.push(kv_str("substrate.session_id", s, MAX_ID));
            }
        }
        Resource {
            attributes,
            ..Default::default()
        }
    }

    /// One request's body: `spans` grouped by resource, in order.
    pub fn request(&self, spans: Vec<(u32, Span)>, config: &Config) -> ExportTraceServiceRequest {
        let scope = InstrumentationScope {
            name: "substrate-drain".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let mut out: Vec<ResourceSpans> = vec![];
        let mut index: HashMap<u32, usize> = HashMap::new();
        for (r, s) in spans {
            let k = *index.entry(r).or_insert_with(|| {
                out.push(ResourceSpans {
                    resource: Some(self.resource_of(r, config)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope.clone()),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                out.len() - 1
            });
            out[k].scope_spans[0].spans.push(s);
        }
        ExportTraceServiceRequest {
            resource_spans: out,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sending.

/// What one attempt found.
enum Attempt {
    /// Accepted; spans rejected and why (partial success).
    Done(i64, String),
    /// Worth another attempt: why, and the endpoint's Retry-After.
    Retry(String, Option<Duration>),
    /// Not worth another attempt.
    Fatal(String),
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// from `now`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use drain::views::otlp::retry_after;
/// assert_eq!(retry_after("3", UNIX_EPOCH), Some(Duration::from_secs(3)));
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
/// assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(7)));
/// assert_eq!(retry_after("soon", now), None);
/// ```
pub fn retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s.min(1 << 30)));
    }
    let p: Vec<&str> = v.split_ascii_whitespace().collect();
    if p.len() != 6 || p[5] != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d: i64 = p[1].parse().ok().filter(|d| (1..=31).contains(d))?;
    let m = MONTHS.iter().position(|m| *m == p[2])? as i64 + 1;
    let y: i64 = p[3].parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let hms: Vec<i64> = p[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, s] = hms[..] else {
        return None;
    };
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&s) {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before attempt `n + 1` after `n` failed ones: 1, 2, 4, 8 s, scaled down to fit
/// 15/16 of `max` in all, times a random factor in [0.5, 1].
fn backoff(n: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1).min(max / 16);
    let d = base * (1u32 << n.clamp(1, 8).saturating_sub(1));
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos())
        ^ std::process::id().rotate_left(16);
    let r = f64::from(fnv64(&noise.to_le_bytes()) as u32) / f64::from(u32::MAX);
    d.mul_f64(0.5 + 0.5 * r)
}

/// An error of the connection, in a few words.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::TimedOut | K::WouldBlock => "timed out".into(),
        K::UnexpectedEof => "connection closed before an answer".into(),
        K::BrokenPipe => "connection closed while sending".into(),
        _ => printable(&e.to_string(), 200),
    }
}

/// Text from the endpoint, made one printable line.
fn printable(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::views::shorten(s.trim(), max)
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An OTLP/HTTP client: posts bodies, retrying as the protocol says.
pub struct Sender<'a> {
    config: &'a Config,
    /// Attempts that were retried.
    pub retries: u64,
}

impl<'a> Sender<'a> {
    /// A client for `config`'s endpoint.
    pub fn new(config: &'a Config) -> Self {
        Sender { config, retries: 0 }
    }

    fn attempt(&self, body: &[u8]) -> Attempt {
        let c = self.config;
        let req = minreq::post(c.url.as_str())
            .with_header("Content-Type", "application/x-protobuf")
            .with_header(
                "User-Agent",
                concat!("substrate-drain/", env!("CARGO_PKG_VERSION")),
            )
            .with_headers(c.headers.iter().cloned())
            .with_body(body.to_vec())
            .with_timeout(c.timeout_secs)
            .with_follow_redirects(false)
            .with_max_headers_size(64 << 10)
            .with_max_status_line_length(4096);
        let mut r = match req.send_lazy() {
            Ok(r) => r,
            // A certificate the trust store does not vouch for, or a TLS handshake that fails:
            // trying again will not change it.
            Err(minreq::Error::IoError(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Attempt::Fatal(format!("TLS: {}", printable(&e.to_string(), 200)))
            }
            Err(minreq::Error::RustlsCreateConnection(e)) => {
                return Attempt::Fatal(format!("TLS: {}", printable(&e.to_string(), 200)))
            }
            Err(minreq::Error::IoError(e)) => return Attempt::Retry(io_reason(&e), None),
            Err(minreq::Error::AddressNotFound) => {
                return Attempt::Retry("address not found".into(), None)
            }
            Err(e) => return Attempt::Fatal(printable(&e.to_string(), 200)),
        };
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let wait = header("retry-after").and_then(|v| retry_after(&v, SystemTime::now()));
        let protobuf =
            header("content-type").is_some_and(|t| t.trim().starts_with("application/x-protobuf"));
        let code = r.status_code;
        let what = format!("HTTP {code} {}", printable(&r.reason_phrase, 60));
        let mut answer = vec![];
        let read = (&mut r).take(MAX_ANSWER).read_to_end(&mut answer);
        match code {
            200..=299 => {
                let partial = protobuf
                    .then(|| ExportTraceServiceResponse::decode(&answer[..]).ok())
                    .flatten()
                    .and_then(|a| a.partial_success);
                match partial {
                    Some(p) => {
                        Attempt::Done(p.rejected_spans.max(0), printable(&p.error_message, 200))
                    }
                    None => Attempt::Done(0, String::new()),
                }
            }
            429 | 502 | 503 | 504 => Attempt::Retry(what, wait),
            _ => {
                let detail = if read.is_err() {
                    String::new()
                } else if protobuf {
                    RpcStatus::decode(&answer[..])
                        .map(|s| printable(&s.message, 200))
                        .unwrap_or_default()
                } else {
                    printable(&String::from_utf8_lossy(&answer), 200)
                };
                if detail.is_empty() {
                    Attempt::Fatal(what)
                } else {
                    Attempt::Fatal(format!("{what}: {detail}"))
                }
            }
        }
    }

    /// Post one body until the endpoint takes it: the spans it rejected and why, or the line
    /// saying why it was given up.
    pub fn post(&mut self, body: &[u8]) -> Result<(i64, String), String> {
        let first = Instant::now();
        let max = self.config.retry_max_time;
        let url = &self.config.url;
        let mut n = 0;
        loop {
            n += 1;
            let (why, wait) = match self.attempt(body) {
                Attempt::Done(rejected, msg) => return Ok((rejected, msg)),
                Attempt::Fatal(why) => return Err(format!("OTLP endpoint {url}: {why}")),
                Attempt::Retry(why, wait) => (why, wait),
            };
            let attempts = if n == 1 {
                "1 attempt".into()
            } else {
                format!("{n} attempts")
            };
            if n >= ATTEMPTS {
                return Err(format!("OTLP endpoint {url}: {why} ({attempts})"));
            }
            let wait = wait.unwrap_or_else(|| backoff(n, max));
            if first.elapsed() + wait > max {
                return Err(format!(
                    "OTLP endpoint {url}: {why} ({attempts}; the next in {:.1} s would pass --retry-max-time {:.1} s)",
                    wait.as_secs_f64(),
                    max.as_secs_f64()
                ));
            }
            std::thread::sleep(wait);
            self.retries += 1;
        }
    }
}

/// Batches spans and posts them.
struct Batcher<'a> {
    sender: Sender<'a>,
    spans: Vec<(u32, Span)>,
    bytes: usize,
    report: Report,
}

impl Batcher<'_> {
    fn push(&mut self, b: &Builder, r: u32, s: Span) -> Result<(), String> {
        let len = s.encoded_len() + 16;
        if !self.spans.is_empty() && self.bytes + len > MAX_REQUEST_BYTES {
            self.flush(b)?;
        }
        self.bytes += len;
        self.spans.push((r, s));
        if self.spans.len() >= self.sender.config.batch_size {
            self.flush(b)?;
        }
        Ok(())
    }

    fn flush(&mut self, b: &Builder) -> Result<(), String> {
        if self.spans.is_empty() {
            return Ok(());
        }
        let spans = std::mem::take(&mut self.spans);
        self.bytes = 0;
        let n = spans.len() as u64;
        let events: u64 = spans.iter().map(|(_, s)| s.events.len() as u64).sum();
        let body = b.request(spans, self.sender.config).encode_to_vec();
        let (rejected, msg) = self.sender.post(&body)?;
        if rejected > 0 || !msg.is_empty() {
            self.report.warnings.push(format!(
                "OTLP endpoint {}: {rejected} span(s) rejected{}{msg}",
                self.sender.config.url,
                if msg.is_empty() { "" } else { ": " }
            ));
        }
        self.report.spans += n;
        self.report.events += events;
        self.report.batches += 1;
        self.report.bytes += body.len() as u64;
        self.report.rejected += rejected as u64;
        Ok(())
    }
}

/// Export `input` (a trace file or a ring) with `args`, the environment read through `env`.
pub fn export_with(
    input: &Path,
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Report, Failure> {
    let config = Config::new(args, env).map_err(bad)?;
    let mut builder = Builder::new(&config);
    let mut batcher = Batcher {
        sender: Sender::new(&config),
        spans: vec![],
        bytes: 0,
        report: Report {
            url: config.url.clone(),
            warnings: config.warnings.clone(),
            ..Default::default()
        },
    };
    let mut err: Option<String> = None;
    let drain = |b: &mut Builder, batcher: &mut Batcher, err: &mut Option<String>| {
        for (r, s) in std::mem::take(&mut b.ready) {
            if err.is_none() {
                *err = batcher.push(b, r, s).err();
            }
        }
    };
    let read = crate::views::for_each_event(input, |ev| {
        if err.is_none() {
            builder.add(ev);
            drain(&mut builder, &mut batcher, &mut err);
        }
    });
    read.map_err(bad)?;
    if err.is_none() {
        builder.finish();
        drain(&mut builder, &mut batcher, &mut err);
    }
    if err.is_none() {
        err = batcher.flush(&builder).err();
    }
    if let Some(message) = err {
        return Err(Failure { status: 1, message });
    }
    let mut report = batcher.report;
    report.retries = batcher.sender.retries;
    report.late = builder.late;
    report.dropped_events = builder.dropped_events;
    Ok(report)
}

/// [`export_with`] the process's environment.
pub fn export(input: &Path, args: &Args) -> Result<Report, Failure> {
    export_with(input, args, &|n| std::env::var(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            endpoint: Some("http://127.0.0.1:4318".into()),
            headers: vec![],
            batch_size: 512,
            retry_max_time: Duration::from_secs(30),
        }
    }

    fn config(env: &[(&str, &str)]) -> Config {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::new(&args(), &move |n| {
            env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    const SES: &str = "01a21b7d-1807-7c81-9523-58a1d5340232";

    fn line(
        t: &str,
        span: &str,
        parent: Option<&str>,
        pid: i64,
        ts: i64,
        extra: &str,
    ) -> Event<'static> {
        let parent = parent.map_or("null".into(), |p| format!("\"{p}\""));
        Event::parse(&format!(
            r#"{{"ts":"x","ts_unix_ns":{ts},"event_type":"{t}","session_id":"{SES}","span_id":"{span}","parent_span":"spn_01a21b7d-0000-7000-8000-00000000abcd","parent_image":{parent},"component":"telemetry","pid":{pid},"tid":{pid},"pos":0,"ring_id":"r"{extra}}}"#
        ))
        .unwrap()
        .into_owned()
    }

    const A: &str = "spn_01a21b7d-181e-7b25-8bd7-2f968bd9e67e";
    const B: &str = "spn_01a21b7d-1821-7d5a-bb8d-eb14c22aad88";
    const C: &str = "spn_01a21b7d-1821-793a-9f84-4e312226d49a";

    fn attr<'s>(s: &'s Span, k: &str) -> Option<&'s any_value::Value> {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn spans(events: &[Event], env: &[(&str, &str)]) -> Vec<Span> {
        let c = config(env);
        let mut b = Builder::new(&c);
        for e in events {
            b.add(e);
        }
        b.finish();
        b.ready.into_iter().map(|(_, s)| s).collect()
    }

    fn tree() -> Vec<Event<'static>> {
        vec![
            line(
                "process_start",
                A,
                None,
                10,
                100,
                r#","ppid":1,"exe":"/bin/sh","argv":["sh","-c","x"],"cwd":"/t","via":"exec""#,
            ),
            line(
                "process_start",
                B,
                Some(A),
                11,
                200,
                r#","ppid":10,"exe":"/bin/sh","argv":["sh","-c","x"],"cwd":"/t","via":"fork""#,
            ),
            line(
                "exec",
                B,
                Some(A),
                11,
                250,
                r#","op":"execve","path":"/bin/cat","argv":["cat"]"#,
            ),
            line(
                "process_start",
                C,
                Some(B),
                11,
                300,
                r#","ppid":10,"exe":"/bin/cat","argv":["cat","f"],"cwd":"/t","via":"exec""#,
            ),
            line(
                "file_open",
                C,
                Some(B),
                11,
                310,
                r#","op":"open","path":"f","flags":0,"access":"read","errno":2"#,
            ),
            line(
                "process_exit",
                C,
                Some(B),
                11,
                400,
                r#","how":"exit","exit_code":1"#,
            ),
        ]
    }

    #[test]
    fn a_tree_maps_to_spans_with_parents_times_and_status() {
        let s = spans(&tree(), &[]);
        assert_eq!(s.len(), 3);
        let by = |id: &str| s.iter().find(|x| x.span_id == span_id(id)).unwrap();
        let (a, b, c) = (by(A), by(B), by(C));
        for x in &s {
            assert_eq!(x.trace_id, trace_id(SES));
            assert_eq!(x.kind, span::SpanKind::Internal as i32);
        }
        // The root's parent is the enclosing substrate span.
        assert_eq!(
            a.parent_span_id,
            span_id("spn_01a21b7d-0000-7000-8000-00000000abcd")
        );
        assert_eq!(a.flags & 0x300, 0x300);
        assert_eq!(b.parent_span_id, a.span_id);
        assert_eq!(c.parent_span_id, b.span_id);
        assert_eq!(c.flags & 0x300, 0x100);
        // B ended when its pid exec'd C; A has no end: the trace's last event.
        assert_eq!((b.start_time_unix_nano, b.end_time_unix_nano), (200, 300));
        assert_eq!(
            attr(b, "substrate.ended_by"),
            Some(&any_value::Value::StringValue("exec".into()))
        );
        assert_eq!(a.end_time_unix_nano, 400);
        assert_eq!(
            attr(a, "substrate.ended_by"),
            Some(&any_value::Value::StringValue("none".into()))
        );
        assert_eq!(c.name, "cat");
        assert_eq!(
            attr(c, "process.exit.code"),
            Some(&any_value::Value::IntValue(1))
        );
        assert_eq!(
            c.status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
        assert!(a.status.is_none());
        assert_eq!(
            attr(c, "process.pid"),
            Some(&any_value::Value::IntValue(11))
        );
        assert_eq!(
            attr(c, "process.parent_pid"),
            Some(&any_value::Value::IntValue(10))
        );
        assert_eq!(
            attr(c, "process.executable.name"),
            Some(&any_value::Value::StringValue("cat".into()))
        );
        // Events: the exec on B, the open on C, with their fields.
        assert_eq!(b.events.len(), 1);
        assert_eq!(c.events[0].name, "file_open");
        let keys: Vec<&str> = c.events[0]
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        for k in ["path", "flags", "access", "errno", "op", "thread.id"] {
            assert!(keys.contains(&k), "{keys:?}");
        }
        assert!(!keys.contains(&"ring_id"));
    }

    #[test]
    fn traceparent_gives_the_trace_and_the_roots_parent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let s = spans(&tree(), &[("TRACEPARENT", tp), ("TRACESTATE", "k=v")]);
        let (t, p, _) = parse_traceparent(tp).unwrap();
        for x in &s {
            assert_eq!(x.trace_id, t);
            assert_eq!(x.trace_state, "k=v");
            assert_eq!(x.flags & 0xff, 0);
        }
        assert_eq!(s.iter().filter(|x| x.parent_span_id == p).count(), 1);
        // A bad one is ignored, with a warning.
        let c = config(&[("TRACEPARENT", "00-zz-00f067aa0ba902b7-01")]);
        assert!(c.remote.is_none() && c.warnings.len() == 1);
    }

    #[test]
    fn events_are_capped_and_late_lines_counted() {
        let mut ev = tree();
        let open = ev[4].clone();
        for _ in 0..MAX_EVENTS_PER_SPAN + 5 {
            ev.insert(4, open.clone());
        }
        let c = config(&[]);
        let mut b = Builder::new(&c);
        for e in &ev {
            b.add(e);
        }
        // Past the window an ended image is sent; a line of it after that is late.
        for _ in 0..CLOSE_WINDOW {
            b.add(&line("process_start", A, None, 10, 500, ""));
        }
        assert!(b.ready.iter().any(|(_, s)| s.span_id == span_id(C)));
        b.add(&ev[4]);
        assert_eq!(b.late, 1);
        b.finish();
        let c = b
            .ready
            .iter()
            .find(|(_, s)| s.span_id == span_id(C))
            .unwrap();
        assert_eq!(c.1.events.len(), MAX_EVENTS_PER_SPAN);
        assert_eq!(c.1.dropped_events_count, 6);
    }

    #[test]
    fn hostile_values_are_bounded_and_odd_ids_hashed() {
        let long = "x".repeat(100_000);
        let argv: Vec<String> = (0..1000).map(|i| format!("\"a{i}\"")).collect();
        let ev = vec![
            line(
                "process_start",
                &long,
                Some("garbage"),
                1,
                -5,
                &format!(
                    r#","exe":"{long}","argv":[{}],"cwd":"{long}""#,
                    argv.join(",")
                ),
            ),
            line(
                "file_open",
                &long,
                None,
                1,
                7,
                &format!(r#","path":"{long}","family":[[1],{{"a":1}},"x"]"#),
            ),
        ];
        let s = spans(&ev, &[]);
        assert_eq!(s.len(), 1);
        let x = &s[0];
        assert_eq!(x.span_id, span_id(&long));
        assert!(x.parent_span_id.len() == 8); // the enclosing span: "garbage" was never seen
        assert_eq!(x.start_time_unix_nano, 0);
        assert!(x.encoded_len() < 64 * MAX_STR);
        match attr(x, "process.command_args") {
            Some(any_value::Value::ArrayValue(a)) => assert_eq!(a.values.len(), MAX_ARRAY),
            v => panic!("{v:?}"),
        }
        assert_eq!(
            attr(x, "substrate.truncated"),
            Some(&any_value::Value::BoolValue(true))
        );
        assert!(x.events[0]
            .attributes
            .iter()
            .all(|a| a.encoded_len() < 2 * MAX_EVENT_STR));
    }

    #[test]
    fn urls_headers_and_environment() {
        assert!(endpoint_url("http://h:99999", true).is_err());
        assert!(endpoint_url("http://u:p@h", true).is_err());
        assert!(endpoint_url("ftp://h", true).is_err());
        assert!(endpoint_url("http://h/a b", true).is_err());
        assert_eq!(
            endpoint_url("HTTP://[::1]:4318", true).unwrap(),
            "http://[::1]:4318/v1/traces"
        );
        assert_eq!(
            endpoint_url("http://h?x=1", true).unwrap(),
            "http://h/v1/traces?x=1"
        );
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let mut a = args();
        a.endpoint = None;
        let c = Config::new(&a, &env(&[])).unwrap();
        assert_eq!(c.url, DEFAULT_ENDPOINT);
        let c = Config::new(
            &a,
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/")]),
        )
        .unwrap();
        assert_eq!(c.url, "http://c:4318/base/v1/traces");
        let c = Config::new(
            &a,
            &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:1/t")]),
        )
        .unwrap();
        assert_eq!(c.url, "http://c:1/t");
        a.headers = vec!["x-b=2".into()];
        let c = Config::new(
            &a,
            &env(&[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-a=1%2C1, x-b=0,Host=evil,bad",
                ),
                ("OTEL_SERVICE_NAME", "svc"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "service.name=other,deployment.environment=ci",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.headers,
            [
                ("x-a".to_string(), "1,1".to_string()),
                ("x-b".into(), "2".into())
            ]
        );
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert_eq!(
            c.resource[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("svc".into()))
        );
        assert_eq!(c.resource[1].key, "deployment.environment");
        a.headers = vec!["x=a\r\nInjected: 1".into()];
        assert!(Config::new(&a, &env(&[])).is_err());
    }

    #[test]
    fn backoff_fits_the_time_given() {
        let max = Duration::from_millis(800);
        let all: Duration = (1..ATTEMPTS).map(|n| backoff(n, max)).sum();
        assert!(all <= max * 15 / 16, "{all:?}");
        assert!(backoff(1, Duration::from_secs(30)) <= Duration::from_secs(1));
        assert!(backoff(4, Duration::from_secs(30)) >= Duration::from_secs(4));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", SystemTime::now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("Sun, 99 Nov 1994 08:49:37 GMT", UNIX_EPOCH),
            None
        );
    }

    #[test]
    fn a_closed_port_fails_in_bounded_time_with_one_line() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut a = args();
        a.endpoint = Some(format!("http://127.0.0.1:{port}"));
        a.retry_max_time = Duration::from_millis(400);
        let c = Config::new(&a, &|_| None).unwrap();
        let t = Instant::now();
        let e = Sender::new(&c).post(b"x").unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(e.ends_with("connection refused (5 attempts)"), "{e}");
        assert!(!e.contains('\n'));
    }
}
