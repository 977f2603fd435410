//! Saved vector indexes: one `cairn-ann` file per collection in a folder of the node's data
//! directory, named by collection id, so a restart loads each HNSW graph instead of rebuilding
//! it from every chunk. A file is a cache, never the truth: it is used only when its
//! parameters match the configuration, then reconciled with storage (vectors storage no longer
//! holds are dropped, new or changed ones inserted), so a stale, damaged or missing file costs
//! a rebuild, never a wrong result.

use std::collections::HashSet;
use std::path::PathBuf;

use cairn_ann::{AnnIndex, Params, PersistError};

/// The file extension of a saved index.
const EXT: &str = "ann";

/// The folder of saved indexes (see the module docs).
pub(crate) struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// Uses `dir` (created, owner-only) for saved indexes.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
    }

    /// The file of `collection_id`; `None` for an id that is not a plain file name (ids are
    /// generated, but the folder must never be escaped whatever storage holds).
    fn path(&self, collection_id: &str) -> Option<PathBuf> {
        let plain = !collection_id.is_empty()
            && collection_id.len() <= 128
            && collection_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        plain.then(|| self.dir.join(format!("{collection_id}.{EXT}")))
    }

    /// The saved index of `collection_id` when it was built with `params` (searched with its
    /// `ef_search`); `None` when there is none or it cannot be used.
    pub fn load(&self, collection_id: &str, params: Params) -> Option<AnnIndex> {
        let path = self.path(collection_id)?;
        match AnnIndex::load(&path) {
            Ok(ix) => {
                let built = ix.params();
                let same = built.m == params.m
                    && built.ef_construction == params.ef_construction
                    && built.graph_from == params.graph_from;
                if !same {
                    tracing::info!(collection = collection_id, "saved vector index has other parameters; rebuilding");
                }
                same.then(|| ix.with_ef_search(params.ef_search))
            }
            Err(PersistError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(collection = collection_id, error = %e, "saved vector index not used; rebuilding");
                None
            }
        }
    }

    /// Saves `index` as `collection_id`'s; a failure is logged (the next start rebuilds).
    pub fn save(&self, collection_id: &str, index: &AnnIndex) {
        let Some(path) = self.path(collection_id) else { return };
        if let Err(e) = index.save(&path) {
            tracing::warn!(collection = collection_id, error = %e, "saving the vector index failed");
        }
    }

    /// Deletes `collection_id`'s saved index, if any.
    pub fn remove(&self, collection_id: &str) {
        if let Some(path) = self.path(collection_id) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Deletes the saved indexes of collections not in `live` (deleted while the node was
    /// down) and any temporary file an interrupted save left.
    pub fn remove_others(&self, live: &HashSet<&str>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let ext = path.extension().and_then(|s| s.to_str()).unwrap_or_default();
            if (ext == EXT && !live.contains(stem)) || ext == "tmp" {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
