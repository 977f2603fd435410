//! Stop sequences over a token stream: text is released only once it can no longer be the
//! start of a stop sequence, so a stop split across tokens is still caught and never sent.

/// Buffers generated text and finds stop sequences in it.
pub(crate) struct StopFilter {
    stops: Vec<String>,
    pending: String,
    hit: bool,
}

impl StopFilter {
    /// A filter for `stops` (empty strings are ignored).
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), pending: String::new(), hit: false }
    }

    /// Adds text; returns (text safe to send now, whether a stop sequence was hit).
    pub(crate) fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_owned();
            self.pending.clear();
            self.hit = true;
            return (out, true);
        }
        // Keep back the longest tail that is a prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(|n| s.is_char_boundary(*n)).map(move |n| &s[..n]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let split = self.pending.len() - keep;
        let out = self.pending[..split].to_owned();
        self.pending.drain(..split);
        (out, false)
    }

    /// Whether a stop sequence was found.
    pub(crate) fn hit(&self) -> bool {
        self.hit
    }

    /// Whatever is still held back, at the end of generation.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_stops_split_across_tokens() {
        let mut f = StopFilter::new(vec!["END".into()]);
        assert_eq!(f.push("hello E"), ("hello ".into(), false));
        assert_eq!(f.push("N"), (String::new(), false));
        assert_eq!(f.push("D and more"), (String::new(), true));
    }

    #[test]
    fn releases_text_that_cannot_start_a_stop() {
        let mut f = StopFilter::new(vec!["\n\n".into(), "STOP".into()]);
        assert_eq!(f.push("a\nb"), ("a\nb".into(), false));
        assert_eq!(f.push("c S"), ("c ".into(), false));
        assert_eq!(f.push("x"), ("Sx".into(), false));
        assert_eq!(f.finish(), "");
        let mut none = StopFilter::new(vec![]);
        assert_eq!(none.push("anything"), ("anything".into(), false));
    }
}
