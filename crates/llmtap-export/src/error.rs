//! Error types, one enum per operation, each with a bounded `kind()` for logs and metrics.

use std::path::PathBuf;

use llmtap_core::userinfo::mask_userinfo;

/// A configuration value (env var or flag) that cannot be used.
///
/// Messages always name the variable and, unless it may hold a secret, the value, so a user
/// can fix it from the message alone.
#[derive(Debug, thiserror::Error)]
pub enum ExportConfigError {
    /// A variable holds a value outside its allowed set or syntax.
    #[error(
        "invalid value {:?} for {var}: {}",
        mask_userinfo(value),
        mask_userinfo(reason)
    )]
    InvalidValue {
        /// The variable (or flag) name.
        var: String,
        /// The offending value, already redacted where it may carry a secret (URL credentials
        /// are masked when shown).
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The configured transport or feature is not available in this build.
    #[error(
        "{var}={:?} is not supported by this build of llmtap: {reason}",
        mask_userinfo(value)
    )]
    Unsupported {
        /// The variable (or flag) name.
        var: String,
        /// The offending value.
        value: String,
        /// Why, and what to use instead.
        reason: String,
    },
}

impl ExportConfigError {
    pub(crate) fn invalid(
        var: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            var: var.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Bounded classification for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidValue { .. } => "invalid_config",
            Self::Unsupported { .. } => "unsupported_config",
        }
    }
}

/// The JSONL file could not be opened or prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// Creating the parent directory failed.
    #[error("cannot create directory {path} for the JSONL trace file: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Opening (creating/appending) the file failed.
    #[error("cannot open JSONL trace file {path} for appending: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl JsonlError {
    /// Bounded classification for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CreateDir { .. } => "jsonl_create_dir",
            Self::Open { .. } => "jsonl_open",
        }
    }
}

/// Building the export pipeline failed; every variant is a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration value is malformed.
    #[error(transparent)]
    Config(#[from] ExportConfigError),
    /// The JSONL sink cannot be opened.
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
    /// The OTLP exporter could not be built from a valid-looking configuration.
    #[error(
        "cannot build the OTLP exporter for {}: {}",
        mask_userinfo(endpoint),
        mask_userinfo(reason)
    )]
    OtlpBuild {
        /// The endpoint URL.
        endpoint: String,
        /// The builder's message.
        reason: String,
    },
    /// A background thread or runtime needed by the exporter could not be started.
    #[error("cannot start the OTLP exporter runtime: {0}")]
    Runtime(std::io::Error),
}

impl PipelineError {
    /// Bounded classification for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(e) => e.kind(),
            Self::Jsonl(e) => e.kind(),
            Self::OtlpBuild { .. } => "otlp_build",
            Self::Runtime(_) => "runtime",
        }
    }
}

/// Reading a JSONL trace file failed as a whole (bad lines are skipped and counted instead).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened.
    #[error("cannot open trace file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading failed part-way (I/O error, not a bad line).
    #[error("cannot read trace file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ReadError {
    /// Bounded classification for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open { .. } => "read_open",
            Self::Io { .. } => "read_io",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK and every other caller print these errors as they are: no URL credential in them.
    #[test]
    fn config_errors_mask_url_credentials() {
        let err = ExportConfigError::invalid(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://alice:s3cret@collector:4318",
            "expected http:// or https://",
        );
        let msg = err.to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{msg}");
        let err = PipelineError::OtlpBuild {
            endpoint: "https://alice:s3cret@collector:4317".into(),
            reason: "bad TLS".into(),
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
