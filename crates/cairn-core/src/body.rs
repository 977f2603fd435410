//! Reading a body from a peer Cairn does not control (a provider, a tenant's webhook): at most a
//! limit, then stop, so a peer that sends without end costs that much memory and no more.

use futures::{Stream, StreamExt};

/// A body read up to a limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Capped {
    /// All of it.
    Whole(Vec<u8>),
    /// The first `limit` bytes; the peer sent more, which was not read.
    Cut(Vec<u8>),
}

impl Capped {
    /// The bytes read, whole or not.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Capped::Whole(b) | Capped::Cut(b) => b,
        }
    }
}

/// Reads `chunks` until they end or `limit` bytes are in; the first error ends the read.
pub async fn read_capped<S, B, E>(chunks: S, limit: usize) -> Result<Capped, E>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let mut chunks = std::pin::pin!(chunks);
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let chunk = chunk.as_ref();
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Cut(body));
        }
        body.extend_from_slice(chunk);
    }
    Ok(Capped::Whole(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chunks: &[&'static str], limit: usize) -> Capped {
        let stream = futures::stream::iter(chunks.iter().map(|c| Ok::<_, ()>(c.as_bytes())));
        futures::executor::block_on(read_capped(stream, limit)).unwrap()
    }

    #[test]
    fn stops_at_the_limit_and_says_so() {
        assert_eq!(read(&["abc", "def"], 6), Capped::Whole(b"abcdef".to_vec()));
        assert_eq!(read(&["abc", "def"], 4), Capped::Cut(b"abcd".to_vec()));
        assert_eq!(read(&["abc", "def", "g"], 6), Capped::Cut(b"abcdef".to_vec()));
        assert_eq!(read(&[], 0), Capped::Whole(Vec::new()));
    }

    #[test]
    fn never_pulls_past_the_limit() {
        let endless = futures::stream::repeat(Ok::<_, ()>([7u8; 1000]));
        let got = futures::executor::block_on(read_capped(endless, 2500)).unwrap();
        assert_eq!(got, Capped::Cut(vec![7; 2500]));
    }
}
