//! How a controller of a dynamic quorum (KIP-853) starts on an empty data dir:
//! sluice's flags for what `kafka-storage format` says with `--standalone`,
//! `--initial-controllers` and `--no-initial-controllers`. sluice has no format
//! step; these apply on the first start only (later starts follow the voter set
//! stored in the metadata log), so leaving them on a restart's command line is fine.

use super::{Error, Result, split_host_port};

/// One `--initial-controllers` entry: `ID@HOST:PORT:DIRECTORY_ID`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitialController {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub directory_id: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum InitialControllers {
    /// No flag: a single bootstrap server means a standalone controller, as before.
    #[default]
    Unspecified,
    /// `--standalone`: this controller alone is the first voter.
    Standalone,
    /// `--initial-controllers`: these are the first voters.
    Voters(Vec<InitialController>),
    /// `--no-initial-controllers`: start as an observer, to be added with add-controller.
    None,
}

const FLAG: &str = "--initial-controllers";

/// Parse `ID@HOST:PORT:DIRECTORY_ID,...` (Kafka's format; the port and directory
/// id are split off the end, so an IPv6 host in brackets works).
pub fn parse_initial_controllers(value: &str) -> Result<Vec<InitialController>> {
    let bad = |reason: String| Error::InvalidValue { key: FLAG.into(), value: value.into(), reason };
    let mut out: Vec<InitialController> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, rest) = entry.split_once('@').ok_or_else(|| bad(format!("{entry:?} is not ID@HOST:PORT:DIRECTORY_ID")))?;
        let id: i32 = id.parse().map_err(|_| bad(format!("{id:?} is not a node id")))?;
        if id < 0 {
            return Err(bad(format!("node id {id} is negative")));
        }
        let (addr, directory_id) = rest.rsplit_once(':').ok_or_else(|| bad(format!("{entry:?} has no directory id")))?;
        if !is_directory_id(directory_id) {
            return Err(bad(format!("{directory_id:?} is not a directory id (22 characters of URL-safe base64)")));
        }
        let (host, port) = split_host_port(FLAG, addr)?;
        if out.iter().any(|c| c.id == id) {
            return Err(bad(format!("node id {id} is listed twice")));
        }
        if out.iter().any(|c| c.directory_id == directory_id) {
            return Err(bad(format!("directory id {directory_id} is listed twice")));
        }
        out.push(InitialController { id, host, port, directory_id: directory_id.to_string() });
    }
    if out.is_empty() {
        return Err(bad("no controllers".into()));
    }
    Ok(out)
}

/// A Kafka `Uuid` as text: 16 bytes in URL-safe base64 without padding.
pub fn is_directory_id(s: &str) -> bool {
    s.len() == 22 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_controllers_parse_like_kafka_storage() {
        let v = parse_initial_controllers("1@127.0.0.1:9093:MvDxzVmcRsaTz33bUuRU6A,2@[::1]:9094:07R5amHmR32VDA6jHkGbTA").unwrap();
        assert_eq!(v[0], InitialController { id: 1, host: "127.0.0.1".into(), port: 9093, directory_id: "MvDxzVmcRsaTz33bUuRU6A".into() });
        assert_eq!((v[1].host.as_str(), v[1].port), ("::1", 9094));
        for bad in [
            "",
            "1@h:1",
            "1@h:1:short",
            "x@h:1:MvDxzVmcRsaTz33bUuRU6A",
            "-1@h:1:MvDxzVmcRsaTz33bUuRU6A",
            "1@h:1:MvDxzVmcRsaTz33bUuRU6A,1@h:2:07R5amHmR32VDA6jHkGbTA",
            "1@h:1:MvDxzVmcRsaTz33bUuRU6A,2@h:2:MvDxzVmcRsaTz33bUuRU6A",
            "1@h:port:MvDxzVmcRsaTz33bUuRU6A",
        ] {
            assert!(parse_initial_controllers(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(is_directory_id("AAAAAAAAAAAAAAAAAAAAAA") && !is_directory_id("AAAAAAAAAAAAAAAAAAAAA=") && !is_directory_id("AAAA"));
    }
}
