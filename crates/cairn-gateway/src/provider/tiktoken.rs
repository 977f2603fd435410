//! OpenAI's tokenizers (tiktoken's BPE tables, compiled into the binary): what a stream to an
//! OpenAI model sent before it was cut is counted in the model's own tokens when the upstream
//! reported no usage.

use std::sync::Arc;

use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
use tiktoken_rs::CoreBPE;

use super::TokenCount;

/// The token counter of OpenAI model `model`, if it is one tiktoken knows (`gpt-4o`,
/// `gpt-4.1`, `o3`, `gpt-4`, `gpt-3.5-turbo`, ... and `gpt-5`); `None` for other names, which
/// OpenAI-compatible servers (vLLM, Ollama) may use for anything.
pub(crate) fn counter(model: &str) -> Option<TokenCount> {
    let bpe: fn() -> &'static CoreBPE = match get_tokenizer(model) {
        Some(Tokenizer::O200kBase) => tiktoken_rs::o200k_base_singleton,
        Some(Tokenizer::Cl100kBase) => tiktoken_rs::cl100k_base_singleton,
        _ if model.starts_with("gpt-5") => tiktoken_rs::o200k_base_singleton,
        _ => return None,
    };
    Some(Arc::new(move |text: &str| bpe().encode_ordinary(text).len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_count_in_their_own_tokens() {
        let gpt4o = counter("gpt-4o-mini").unwrap();
        // "Hello, world!" is 4 tokens in o200k_base: "Hello", ",", " world", "!".
        assert_eq!(gpt4o("Hello, world!"), 4);
        assert!(counter("gpt-3.5-turbo").is_some());
        assert!(counter("gpt-5").is_some());
        assert!(counter("llama-3-8b").is_none(), "a name tiktoken does not know is not guessed");
    }
}
