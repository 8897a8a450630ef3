//! `meta.properties`: the cluster id and node id a data dir belongs to, in
//! Kafka's file format. Written once when a data dir is first used; a later start
//! with another node id is refused rather than silently serving someone else's data.
//! It also holds the data dir's `directory.id` (KIP-858/853), which Kafka's
//! `kafka-metadata-quorum add-controller` reads from here to name the controller it
//! adds; a file written before directory ids gets one added on the next start.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("meta.properties io: {0}")]
    Io(#[from] std::io::Error),
    #[error("data dir belongs to node.id {found}, but this broker is node.id {configured}")]
    NodeIdMismatch { found: i32, configured: i32 },
    #[error("meta.properties is malformed: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: i32,
    /// Kafka `Uuid` text (22 chars of URL-safe base64).
    pub directory_id: String,
}

impl Identity {
    /// `directory_id`: the one to record if the file has none yet (the one
    /// `--initial-controllers` lists for this node); else a random one.
    pub fn load_or_create(dir: &Path, node_id: i32, directory_id: Option<&str>) -> Result<Identity, Error> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("meta.properties");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let get = |k: &str| {
                    text.lines().find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')).map(|v| v.trim().to_string()))
                };
                let cluster_id = get("cluster.id").ok_or_else(|| Error::Malformed("no cluster.id".into()))?;
                let found: i32 = get("node.id")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::Malformed("no node.id".into()))?;
                if found != node_id {
                    return Err(Error::NodeIdMismatch { found, configured: node_id });
                }
                let identity = match get("directory.id") {
                    Some(d) => Identity { cluster_id, node_id, directory_id: d },
                    None => {
                        let identity = Identity { cluster_id, node_id, directory_id: directory_id.map_or_else(new_uuid_text, str::to_string) };
                        identity.write(dir)?;
                        identity
                    }
                };
                Ok(identity)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity { cluster_id: new_uuid_text(), node_id, directory_id: directory_id.map_or_else(new_uuid_text, str::to_string) };
                identity.write(dir)?;
                Ok(identity)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Identity {
    /// Kafka's v1 `meta.properties` (what `MetaPropertiesEnsemble` reads), atomically.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("meta.properties.tmp");
        let text = format!("version=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n", self.cluster_id, self.node_id, self.directory_id);
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join("meta.properties"))?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Kafka's cluster and directory ids are a random UUID in URL-safe base64 without
/// padding (22 chars).
fn new_uuid_text() -> String {
    uuid_to_text(uuid::Uuid::new_v4())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A Kafka `Uuid` as text: its 16 bytes in URL-safe base64 without padding.
pub fn uuid_to_text(u: uuid::Uuid) -> String {
    let bits = u.as_u128();
    // 21 six-bit groups cover 126 bits; the last char carries the low 2 bits, padded.
    let mut id: String = (0..21).map(|i| ALPHABET[((bits >> (122 - 6 * i)) & 63) as usize] as char).collect();
    id.push(ALPHABET[((bits & 3) << 4) as usize] as char);
    id
}

/// The inverse of `uuid_to_text`; None for text that is not one.
pub fn text_to_uuid(s: &str) -> Option<uuid::Uuid> {
    if s.len() != 22 {
        return None;
    }
    let mut bits: u128 = 0;
    for (i, b) in s.bytes().enumerate() {
        let v = ALPHABET.iter().position(|a| *a == b)? as u128;
        if i < 21 {
            bits = (bits << 6) | v;
        } else {
            // The last char holds 2 bits followed by 4 zero bits of padding.
            if v & 15 != 0 {
                return None;
            }
            bits = (bits << 2) | (v >> 4);
        }
    }
    Some(uuid::Uuid::from_u128(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded_and_node_id_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path(), 3, None).unwrap();
        assert_eq!(a.cluster_id.len(), 22);
        assert!(crate::config::is_directory_id(&a.directory_id) && a.directory_id != a.cluster_id);
        let b = Identity::load_or_create(dir.path(), 3, Some("MvDxzVmcRsaTz33bUuRU6A")).unwrap();
        assert_eq!((a.cluster_id, a.directory_id), (b.cluster_id, b.directory_id), "kept, whatever a later start says");
        assert!(matches!(Identity::load_or_create(dir.path(), 4, None), Err(Error::NodeIdMismatch { found: 3, configured: 4 })));
        for _ in 0..100 {
            let u = uuid::Uuid::new_v4();
            assert_eq!(text_to_uuid(&uuid_to_text(u)), Some(u));
        }
        assert_eq!(text_to_uuid("AAAAAAAAAAAAAAAAAAAAAA"), Some(uuid::Uuid::nil()));
        assert_eq!(uuid_to_text(uuid::Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert!(text_to_uuid("AAAAAAAAAAAAAAAAAAAAAB").is_none(), "padding bits set");

        // A file from before directory ids gets the given one, once.
        let old = tempfile::tempdir().unwrap();
        std::fs::write(old.path().join("meta.properties"), "version=1\ncluster.id=abc\nnode.id=2\n").unwrap();
        let c = Identity::load_or_create(old.path(), 2, Some("MvDxzVmcRsaTz33bUuRU6A")).unwrap();
        assert_eq!((c.cluster_id.as_str(), c.directory_id.as_str()), ("abc", "MvDxzVmcRsaTz33bUuRU6A"));
        let text = std::fs::read_to_string(old.path().join("meta.properties")).unwrap();
        assert!(text.contains("directory.id=MvDxzVmcRsaTz33bUuRU6A") && text.contains("cluster.id=abc"), "{text}");
    }
}
