//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! An entry is named by the SHA-256 of the `.wasm` file and a hash of everything in the engine
//! that affects compiled code (wasmtime version, compiler settings, target). Its content is a
//! header, the SHA-256 of the payload, and the payload from `Component::serialize`. Entries
//! whose checksum or header do not match, or that wasmtime refuses, are rebuilt.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"FHCACHE1";

/// How a component was obtained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum CacheStatus {
    /// Loaded from the cache without compiling.
    Hit,
    /// Compiled and stored.
    Compiled,
    /// A cached entry was unusable; compiled and stored again.
    Rebuilt(String),
    /// Compiled; the cache could not be written.
    Uncached(String),
}

impl std::fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheStatus::Hit => f.write_str("cached"),
            CacheStatus::Compiled => f.write_str("compiled, now cached"),
            CacheStatus::Rebuilt(why) => write!(f, "rebuilt ({why})"),
            CacheStatus::Uncached(why) => write!(f, "compiled, not cached ({why})"),
        }
    }
}

/// The cache folder for one engine configuration.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        // DefaultHasher with fixed keys is deterministic for a given build of the host, which
        // is all the key must distinguish.
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ArtifactCache {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The entry path for a component's bytes.
    pub fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// Whether a valid-looking entry exists for these bytes (checksum verified).
    pub fn probe(&self, wasm: &[u8]) -> bool {
        std::fs::read(self.entry_path(wasm))
            .ok()
            .is_some_and(|b| verified_payload(&b).is_some())
    }

    /// Loads the component from the cache, or compiles and stores it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheStatus)> {
        let path = self.entry_path(wasm);
        let mut stale = None;
        match std::fs::read(&path) {
            Ok(bytes) => match verified_payload(&bytes) {
                Some(payload) => match deserialize(engine, payload) {
                    Ok(component) => return Ok((component, CacheStatus::Hit)),
                    Err(e) => stale = Some(format!("refused by wasmtime: {e}")),
                },
                None => stale = Some("checksum mismatch".to_owned()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => stale = Some(format!("unreadable: {e}")),
        }
        let component = Component::from_binary(engine, wasm)?;
        let status = match self.store(&path, &component) {
            Ok(()) => match stale {
                Some(why) => CacheStatus::Rebuilt(why),
                None => CacheStatus::Compiled,
            },
            Err(e) => CacheStatus::Uncached(e.to_string()),
        };
        Ok((component, status))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::create_dir_all(&self.dir)?;
        let mut bytes = Vec::with_capacity(payload.len() + 40);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        // Write then rename, so a crash never leaves a half-written entry under the real name.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, payload) = rest.split_at(32);
    (Sha256::digest(payload).as_slice() == sum).then_some(payload)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` runs the bytes as native code. They come only from
    // this cache, written by `store` from `Component::serialize` of the same engine
    // configuration (the file name carries the engine's compatibility hash), and their SHA-256
    // was just verified, so they are what this host wrote. wasmtime also checks the header.
    unsafe { Component::deserialize(engine, payload) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_checksum() {
        let payload = b"compiled code";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&Sha256::digest(payload));
        bytes.extend_from_slice(payload);
        assert_eq!(verified_payload(&bytes), Some(payload.as_slice()));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(verified_payload(&bytes), None);
        assert_eq!(verified_payload(b"FHCACHE1short"), None);
        assert_eq!(verified_payload(b"garbage"), None);
    }
}
