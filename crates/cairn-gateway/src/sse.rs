//! A server-sent events decoder over an HTTP body stream: splits on blank lines, joins
//! multi-line `data:` fields, and keeps the `event:` name (Anthropic uses it).

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};

use crate::provider::ProviderError;

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Upper bound on one event, so a broken upstream cannot make us buffer without limit.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Decodes `body` into events. A body that ends mid-event yields a `Protocol` error, which is
/// how a cut stream shows up.
pub fn decode<S, E>(body: S) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    let start = (body, Pending::default(), false);
    futures::stream::unfold(start, |(mut body, mut buf, done)| async move {
        if done {
            return None;
        }
        loop {
            if let Some(event) = take_event(&mut buf) {
                return Some((Ok(event), (body, buf, false)));
            }
            if buf.bytes.len() > MAX_EVENT_BYTES {
                let err = ProviderError::Protocol("server-sent event too large".into());
                return Some((Err(err), (body, buf, true)));
            }
            match body.next().await {
                Some(Ok(bytes)) => buf.bytes.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    let err = ProviderError::Protocol(format!("stream broken: {e}"));
                    return Some((Err(err), (body, buf, true)));
                }
                None => {
                    let rest = String::from_utf8_lossy(&buf.bytes).trim().to_string();
                    if rest.is_empty() {
                        return None;
                    }
                    // Tolerate a final event missing its blank line; anything else is a cut.
                    buf.bytes.extend_from_slice(b"\n\n");
                    return take_event(&mut buf).map(|e| (Ok(e), (body, Pending::default(), true)));
                }
            }
        }
    })
}

/// Bytes received and not yet decoded, with how far they hold no blank line: each new chunk is
/// searched from there, not from the start, so an event that arrives in many small pieces
/// costs its length, not its length squared.
#[derive(Default)]
struct Pending {
    bytes: BytesMut,
    /// No blank line starts before this offset.
    clean: usize,
}

/// Removes and parses the first complete event in `pending`, skipping comment-only blocks.
fn take_event(pending: &mut Pending) -> Option<SseEvent> {
    let buf = &mut pending.bytes;
    loop {
        let Some(end) = find_blank_line(buf, pending.clean) else {
            // A separator is at most 4 bytes: one may yet end in the next chunk.
            pending.clean = buf.len().saturating_sub(3);
            return None;
        };
        pending.clean = 0;
        let block = buf.split_to(end.0);
        buf.advance(end.1);
        let text = String::from_utf8_lossy(&block);
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in text.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = Some(value.to_string()),
                "data" => data.push(value),
                _ => {} // comments (":"), id, retry
            }
        }
        if !data.is_empty() || event.is_some() {
            return Some(SseEvent { event, data: data.join("\n") });
        }
    }
}

/// Finds the first blank line at or after `from`: returns (index where it starts, length of the
/// separator).
fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i] == b'\r' && buf[i + 1] == b'\n' && buf.get(i + 2..i + 4) == Some(b"\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&'static str]) -> Vec<Result<SseEvent, ProviderError>> {
        let owned: Vec<Result<bytes::Bytes, String>> =
            chunks.iter().map(|c| Ok(bytes::Bytes::from_static(c.as_bytes()))).collect();
        let body = futures::stream::iter(owned);
        futures::executor::block_on(decode(body).collect::<Vec<_>>())
    }

    #[test]
    fn splits_across_chunk_boundaries() {
        let out = events(&["data: {\"a\"", ":1}\n\n: ping\n\nevent: x\ndata: 1\ndata: 2\n\n", "data: [DONE]\n\n"]);
        let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out[0].data, "{\"a\":1}");
        assert_eq!(out[1], SseEvent { event: Some("x".into()), data: "1\n2".into() });
        assert_eq!(out[2].data, "[DONE]");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn handles_crlf_and_missing_final_blank_line() {
        let out = events(&["data: a\r\n\r\ndata: b"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].as_ref().unwrap().data, "b");
    }

    #[test]
    fn an_event_in_many_small_pieces_is_searched_once() {
        // 1 MiB in 16-byte pieces: searched from the start each time, this is 64 Ki searches
        // of half a MiB on average; searched on from where the last one stopped, one MiB.
        let data = "a".repeat(1 << 20);
        let text = format!("data: {data}\n\n");
        let pieces: Vec<Result<bytes::Bytes, String>> =
            text.as_bytes().chunks(16).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        let out = futures::executor::block_on(decode(futures::stream::iter(pieces)).collect::<Vec<_>>());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().map(|e| e.data.len()).ok(), Some(1 << 20));
    }

    proptest::proptest! {
        /// Any bytes, split anywhere, decode without a panic; well-formed events split anywhere
        /// decode to the same events as unsplit.
        #[test]
        fn any_split_of_any_bytes_decodes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                pieces.push(Ok::<_, String>(bytes::Bytes::copy_from_slice(&bytes[from..c])));
                from = c;
            }
            let _ = futures::executor::block_on(decode(futures::stream::iter(pieces)).collect::<Vec<_>>());
        }

        #[test]
        fn splitting_does_not_change_events(data in "[a-zé {}\":,]{0,40}", at in 0usize..64) {
            let text = format!("data: {data}\n\nevent: e\ndata: {data}\n\n");
            let whole = futures::executor::block_on(
                decode(futures::stream::iter([Ok::<_, String>(bytes::Bytes::from(text.clone()))])).collect::<Vec<_>>(),
            );
            let at = at.min(text.len());
            let (a, b) = text.as_bytes().split_at(at);
            let parts = [Ok::<_, String>(bytes::Bytes::copy_from_slice(a)), Ok(bytes::Bytes::copy_from_slice(b))];
            let split = futures::executor::block_on(decode(futures::stream::iter(parts)).collect::<Vec<_>>());
            let ok = |v: Vec<Result<SseEvent, ProviderError>>| v.into_iter().map(|e| e.map_err(|e| e.to_string())).collect::<Vec<_>>();
            proptest::prop_assert_eq!(ok(whole), ok(split));
        }
    }
}
