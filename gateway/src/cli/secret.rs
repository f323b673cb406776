//! The JWT secret: given with `--jwt-secret` / `GAVEL_JWT_SECRET`, or kept in the data
//! directory (`<data-dir>/jwt-secret`), generated there at first start. `gavel serve` and
//! `gavel token` resolve it the same way, so a token minted on the machine is accepted there.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// File name of the generated secret inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// Where the secret came from (for the start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// From the flag or the environment.
    Configured,
    /// Read from a file generated earlier.
    Stored(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// Returns the secret's bytes and where they came from.
pub fn resolve(configured: Option<&str>, data_dir: &Path) -> io::Result<(Vec<u8>, SecretSource)> {
    if let Some(secret) = configured {
        if secret.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the JWT secret must not be empty",
            ));
        }
        return Ok((secret.as_bytes().to_vec(), SecretSource::Configured));
    }
    fs::create_dir_all(data_dir)?;
    let path = data_dir.join(SECRET_FILE);
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // `create_new` makes a concurrent first start (serve and token at once) safe: exactly one
    // process writes the file, the other reads what it wrote.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(hex.as_bytes())?;
            file.sync_all()?;
            Ok((hex.into_bytes(), SecretSource::Generated(path)))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let stored = fs::read_to_string(&path)?;
            let stored = stored.trim();
            if stored.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is empty; delete it to generate a new secret",
                        path.display()
                    ),
                ));
            }
            Ok((stored.as_bytes().to_vec(), SecretSource::Stored(path)))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gavel-secret-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_configured_secret_wins_and_touches_nothing() {
        let dir = temp_dir("configured");
        let (bytes, source) = resolve(Some("s3cret"), &dir).unwrap();
        assert_eq!(bytes, b"s3cret");
        assert_eq!(source, SecretSource::Configured);
        assert!(!dir.exists());
    }

    #[test]
    fn the_first_start_generates_a_private_secret_and_later_starts_reuse_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("generated");
        let (first, source) = resolve(None, &dir).unwrap();
        assert!(matches!(source, SecretSource::Generated(_)));
        assert_eq!(first.len(), 64);
        let mode = fs::metadata(dir.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = resolve(None, &dir).unwrap();
        assert!(matches!(source, SecretSource::Stored(_)));
        assert_eq!(first, second);
        fs::remove_dir_all(&dir).unwrap();
    }
}
