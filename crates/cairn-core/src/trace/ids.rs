//! Trace and span ids as W3C Trace Context defines them, and the `traceparent` header that
//! carries them between services.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

/// A trace's id: 16 random bytes, never all zero; written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A span's id within its trace: 8 random bytes, never all zero; 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

/// A malformed trace or span id.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a valid id: expected {1} lowercase hex digits, not all zero")]
pub struct BadId(String, usize);

macro_rules! hex_id {
    ($ty:ident, $n:expr) => {
        impl $ty {
            /// A fresh random id.
            pub fn random() -> Self {
                let mut b = [0u8; $n];
                let mut rng = rand::thread_rng();
                while b.iter().all(|x| *x == 0) {
                    rng.fill_bytes(&mut b);
                }
                Self(b)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Written once per span and id on every request: one `write_str`, not one
                // formatted write per byte.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut out = [0u8; $n * 2];
                for (i, x) in self.0.iter().enumerate() {
                    out[i * 2] = HEX[usize::from(x >> 4)];
                    out[i * 2 + 1] = HEX[usize::from(x & 0xf)];
                }
                f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $ty {
            type Err = BadId;

            fn from_str(s: &str) -> Result<Self, BadId> {
                let bad = || BadId(s.chars().take(64).collect(), $n * 2);
                if s.len() != $n * 2 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                    return Err(bad());
                }
                let mut b = [0u8; $n];
                for (i, x) in b.iter_mut().enumerate() {
                    *x = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
                }
                if b.iter().all(|x| *x == 0) {
                    return Err(bad());
                }
                Ok(Self(b))
            }
        }
    };
}

hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

impl TraceId {
    /// A fresh id for a trace that starts here: the Unix time in milliseconds in the first
    /// six bytes, ten random bytes after (more than the seven W3C Trace Context level 2 asks
    /// to be random). Time-ordered ids land at the end of the trace tables' key indexes, so
    /// a batch of spans touches a few index pages instead of one per trace.
    pub fn fresh() -> Self {
        let mut b = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut b[6..]);
        let ms = u64::try_from(crate::time::now_ms()).unwrap_or(0);
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        if b.iter().all(|x| *x == 0) {
            return Self::random();
        }
        Self(b)
    }
}

/// Where new work sits in a trace: its trace, the span it runs under (if any), and whether
/// that span is another process's (an incoming `traceparent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace the work belongs to.
    pub trace_id: TraceId,
    /// The span new spans are children of; `None` starts the trace here.
    pub parent: Option<SpanId>,
    /// True when `parent` is a span of another service (so a span under it is this
    /// service's root of the trace).
    pub remote: bool,
}

impl TraceContext {
    /// A new trace with no parent.
    pub fn fresh() -> Self {
        Self { trace_id: TraceId::fresh(), parent: None, remote: false }
    }

    /// The same trace with `span` as the parent of new work.
    pub fn under(self, span: SpanId) -> Self {
        Self { trace_id: self.trace_id, parent: Some(span), remote: false }
    }

    /// Parses a W3C `traceparent` header (`00-<trace>-<span>-<flags>`); `None` when it is
    /// malformed, which the specification says to treat as absent. Versions above 00 are
    /// read by their first four fields, as the specification asks.
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let header = header.trim();
        let mut parts = header.split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let extra = parts.next();
        if version.len() != 2 || version == "ff" || u8::from_str_radix(version, 16).is_err() {
            return None;
        }
        if (version == "00" && extra.is_some()) || flags.len() != 2 || u8::from_str_radix(flags, 16).is_err() {
            return None;
        }
        let trace_id = trace.parse().ok()?;
        let span = span.parse().ok()?;
        Some(Self { trace_id, parent: Some(span), remote: true })
    }

    /// The `traceparent` header naming `span` of this trace as the caller (sampled).
    pub fn traceparent(&self, span: SpanId) -> String {
        format!("00-{}-{}-01", self.trace_id, span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_headers() {
        let t = TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(t.remote);
        assert_eq!(t.traceparent(t.parent.unwrap()), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        // A future version may append fields.
        assert!(TraceContext::from_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::from_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn fresh_trace_ids_are_time_ordered_and_random_after() {
        let (a, b) = (TraceId::fresh(), TraceId::fresh());
        assert!(a.0[..6] <= b.0[..6], "{a} then {b}");
        assert_ne!(a.0[6..], b.0[6..]);
        assert_eq!(a.to_string().parse::<TraceId>().expect("parses"), a);
    }

    #[test]
    fn random_ids_parse_back() {
        let t = TraceId::random();
        assert_eq!(t.to_string().parse::<TraceId>().unwrap(), t);
        let s = SpanId::random();
        assert_eq!(s.to_string().parse::<SpanId>().unwrap(), s);
        assert!("xyz".parse::<SpanId>().is_err());
    }
}
