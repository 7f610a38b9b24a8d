//! Running `nft`: load a ruleset (text or JSON) from standard input, as one
//! transaction, or only check it (`-c`). nft's standard error is kept and
//! returned on failure, so callers can say what the kernel refused.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What went wrong running nft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NftError {
    /// nft could not be started (not installed, not executable).
    Spawn(String),
    /// nft ran and refused the input; its standard error says why.
    Refused {
        /// The exit status.
        status: Option<i32>,
        /// nft's standard error.
        stderr: String,
    },
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftError::Spawn(why) => write!(f, "cannot run nft: {why}"),
            NftError::Refused { status, stderr } => {
                write!(
                    f,
                    "nft exited with status {}: {}",
                    status.map_or("?".into(), |s| s.to_string()),
                    stderr.trim()
                )
            }
        }
    }
}

impl std::error::Error for NftError {}

/// How to run nft: the binary, and a command prefix (e.g. `ip netns exec NAME`).
#[derive(Clone, Debug)]
pub struct Nft {
    /// The nft binary.
    pub binary: PathBuf,
    /// Programs and arguments to run nft under (empty: run it directly).
    pub prefix: Vec<String>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            binary: PathBuf::from("nft"),
            prefix: Vec::new(),
        }
    }
}

impl Nft {
    /// nft inside a network namespace, through `ip netns exec`.
    pub fn in_namespace(namespace: &str) -> Self {
        Nft {
            binary: PathBuf::from("nft"),
            prefix: vec!["ip".into(), "netns".into(), "exec".into(), namespace.into()],
        }
    }

    /// Runs `nft ARGS` with `input` on standard input; returns standard output.
    pub fn run(&self, args: &[&str], input: &str) -> Result<String, NftError> {
        let mut command = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NftError::Spawn(format!("{}: {e}", self.binary.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            // nft reads all of its input before it answers; a write error shows in its status.
            let _ = stdin.write_all(input.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|e| NftError::Spawn(e.to_string()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(NftError::Refused {
                status: output.status.code(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Loads an nft script (`nft -f -`) in one transaction.
    pub fn apply_text(&self, script: &str) -> Result<(), NftError> {
        self.run(&["-f", "-"], script).map(|_| ())
    }

    /// Checks an nft script without changing anything (`nft -c -f -`).
    pub fn check_text(&self, script: &str) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], script).map(|_| ())
    }

    /// Loads a libnftables JSON document (`nft -j -f -`) in one transaction.
    pub fn apply_json(&self, document: &str) -> Result<(), NftError> {
        self.run(&["-j", "-f", "-"], document).map(|_| ())
    }

    /// Checks a libnftables JSON document (`nft -c -j -f -`).
    pub fn check_json(&self, document: &str) -> Result<(), NftError> {
        self.run(&["-c", "-j", "-f", "-"], document).map(|_| ())
    }
}
