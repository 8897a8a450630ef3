//! `meta.properties`: the cluster id and node id a data dir belongs to, in
//! Kafka's file format. Written once when a data dir is first used; a later start
//! with another node id is refused rather than silently serving someone else's data.

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
}

impl Identity {
    pub fn load_or_create(dir: &Path, node_id: i32) -> Result<Identity, Error> {
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
                Ok(Identity { cluster_id, node_id })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let cluster_id = new_cluster_id();
                let tmp = dir.join("meta.properties.tmp");
                std::fs::write(&tmp, format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"))?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(dir)?.sync_all()?;
                Ok(Identity { cluster_id, node_id })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Kafka's cluster ids are a random UUID in URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = uuid::Uuid::new_v4().as_u128();
    // 21 six-bit groups cover 126 bits; the last char carries the low 2 bits, padded.
    let mut id: String = (0..21).map(|i| ALPHABET[((bits >> (122 - 6 * i)) & 63) as usize] as char).collect();
    id.push(ALPHABET[((bits & 3) << 4) as usize] as char);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded_and_node_id_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path(), 3).unwrap();
        assert_eq!(a.cluster_id.len(), 22);
        let b = Identity::load_or_create(dir.path(), 3).unwrap();
        assert_eq!(a.cluster_id, b.cluster_id);
        assert!(matches!(Identity::load_or_create(dir.path(), 4), Err(Error::NodeIdMismatch { found: 3, configured: 4 })));
    }
}
