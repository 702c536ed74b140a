//! The state file: where this client resumes after a restart.
//!
//! A small JSON object `{"relay","channel","last_seq"}`, replaced atomically
//! (write a temporary file, fsync, rename) after each final outcome, so a
//! crash at any moment leaves either the old or the new position.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::RelayUrl;
use crate::error::Fatal;

/// The file's contents.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The relay's base URL.
    pub relay: String,
    /// The channel id.
    pub channel: String,
    /// Every event up to this seq is finished (delivered, failed or filtered).
    pub last_seq: u64,
}

/// One channel's state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    relay: String,
    channel: String,
}

/// `<state dir>/hookpipe/<host_port>-<channel>.json`, where the state dir is
/// the platform's (e.g. `~/.local/state`), else its local data dir, else `.`.
pub fn default_path(relay: &RelayUrl) -> PathBuf {
    let dir = dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join("hookpipe").join(file_name(relay))
}

fn file_name(relay: &RelayUrl) -> String {
    let host: String = relay
        .host_port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{}.json", relay.channel)
}

impl StateFile {
    /// The state file at `path` for `relay`'s channel.
    pub fn new(path: PathBuf, relay: &RelayUrl) -> StateFile {
        StateFile {
            path,
            relay: relay.base.clone(),
            channel: relay.channel.clone(),
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved `last_seq`, `None` when there is no file yet.
    pub fn load(&self) -> Result<Option<u64>, Fatal> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unusable(&format!("cannot be read ({e})"))),
        };
        let pos: Position = serde_json::from_str(&text).map_err(|e| {
            self.unusable(&format!(
                "is not a hookpipe state file ({e}); delete it or pass --since SEQ"
            ))
        })?;
        if pos.channel != self.channel {
            return Err(self.unusable(&format!(
                "belongs to channel {} on {}; pass another --state-file for channel {}",
                pos.channel, pos.relay, self.channel
            )));
        }
        if pos.relay != self.relay {
            tracing::warn!(path = %self.path.display(), saved = %pos.relay, now = %self.relay, "the state file was written for another relay URL of this channel; using its position");
        }
        Ok(Some(pos.last_seq))
    }

    /// Creates the file's directory, so a bad path fails at start.
    pub fn prepare(&self) -> Result<(), Fatal> {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir)
                .map_err(|e| self.unusable(&format!("cannot be created: {}: {e}", dir.display()))),
            _ => Ok(()),
        }
    }

    /// Atomically records `last_seq`.
    pub fn save(&self, last_seq: u64) -> std::io::Result<()> {
        let pos = Position {
            relay: self.relay.clone(),
            channel: self.channel.clone(),
            last_seq,
        };
        let mut json = serde_json::to_vec(&pos).expect("a position always serialises");
        json.push(b'\n');
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn unusable(&self, why: &str) -> Fatal {
        Fatal::Usage(format!("state file {} {why}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> RelayUrl {
        RelayUrl::parse("http://127.0.0.1:8080/chan1").unwrap()
    }

    #[test]
    fn default_path_is_per_relay_and_channel() {
        let p = default_path(&relay());
        assert!(
            p.ends_with("hookpipe/127.0.0.1_8080-chan1.json"),
            "{}",
            p.display()
        );
        let v6 = RelayUrl::parse("https://[::1]/c").unwrap();
        assert_eq!(file_name(&v6), "___1__443-c.json");
    }

    #[test]
    fn save_then_load_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let s = StateFile::new(path.clone(), &relay());
        assert_eq!(s.load().unwrap(), None);
        s.prepare().unwrap();
        s.save(41).unwrap();
        s.save(42).unwrap();
        assert_eq!(s.load().unwrap(), Some(42));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"relay": "http://127.0.0.1:8080", "channel": "chan1", "last_seq": 42})
        );
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec!["state.json"],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn foreign_or_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let s = StateFile::new(path.clone(), &relay());
        fs::write(&path, "{not json").unwrap();
        assert!(
            matches!(s.load(), Err(Fatal::Usage(m)) if m.contains("delete it or pass --since"))
        );
        fs::write(
            &path,
            r#"{"relay":"http://x","channel":"other","last_seq":1}"#,
        )
        .unwrap();
        assert!(matches!(s.load(), Err(Fatal::Usage(m)) if m.contains("belongs to channel other")));
    }

    #[test]
    fn unwritable_place_fails_to_save() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::new(dir.path().join("missing/s.json"), &relay());
        assert!(s.save(1).is_err());
    }
}
