//! Proxy configuration: one precedence order (flag > `LLMTAP_*` env > default) and loud failures.
//!
//! Flags arrive as raw strings so a bad flag and a bad env value produce the same one-line error,
//! which the binary turns into exit code 64 (EX_USAGE).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use llmtap_core::env::{EnvSource, parse_bool, parse_bytes};
use llmtap_core::userinfo::mask_userinfo;
use llmtap_export::{
    DEFAULT_KEEP_FILES, DEFAULT_MAX_BYTES, ENV_JSONL, ENV_JSONL_KEEP, ENV_JSONL_MAX_BYTES,
    JsonlConfig, MAX_KEEP_FILES, parse_jsonl_path, parse_keep, parse_max_bytes,
};

/// Default listen address: loopback only, so a fresh install never exposes an open relay.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8421";
/// Default JSONL path, relative to the working directory (the exporter's, so every writer
/// and reader agrees on it).
pub const DEFAULT_JSONL: &str = llmtap_export::DEFAULT_JSONL_PATH;
/// Default upstream for OpenAI-compatible paths.
pub const DEFAULT_UPSTREAM_OPENAI: &str = "https://api.openai.com";
/// Default upstream for Anthropic Messages paths.
pub const DEFAULT_UPSTREAM_ANTHROPIC: &str = "https://api.anthropic.com";
/// Default upstream for Gemini paths.
pub const DEFAULT_UPSTREAM_GEMINI: &str = "https://generativelanguage.googleapis.com";
/// Time allowed for the upstream to send response headers. Long non-streaming reasoning calls
/// take minutes, so this is generous.
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 600;
/// Time allowed between two body chunks of an upstream response before the call is ended as
/// `upstream_timeout`.
pub const DEFAULT_STREAM_IDLE_TIMEOUT_SECS: u64 = 300;
/// Time allowed to open a TCP (and TLS) connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Grace period for in-flight calls on SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// Bytes of a request or non-streaming response body kept for parsing. Larger bodies still pass
/// through untouched; only their capture is skipped and marked.
pub const DEFAULT_MAX_CAPTURE_BYTES: usize = 8 * 1024 * 1024;
/// Time a client has to send a complete request head, counted from when its connection starts
/// waiting for one — so it also closes an idle keep-alive connection (slowloris, forgotten pools).
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 30;
/// Longest pause allowed between two reads of a request body (a stalled upload).
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
/// Open client connections; past it, accepting waits (the kernel's queue holds the rest).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Request-body bytes held for capture across all connections at once; past it, bodies are
/// forwarded without capture (marked), so many stalled uploads cannot grow memory.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;
/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` set one.
pub const DEFAULT_SERVICE_NAME: &str = "llmtap-proxy";

/// Raw values from command-line flags; `None` means the flag was not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--jsonl` (a path or `off`)
    pub jsonl: Option<String>,
    /// `--upstream-openai`
    pub upstream_openai: Option<String>,
    /// `--upstream-anthropic`
    pub upstream_anthropic: Option<String>,
    /// `--upstream-gemini`
    pub upstream_gemini: Option<String>,
    /// `--provider-openai`: the `gen_ai.provider.name` for OpenAI-compatible upstreams.
    pub provider_openai: Option<String>,
    /// `--no-content`: turns content capture off whatever the OTel variable says.
    pub no_content: bool,
    /// `--upstream-timeout-secs`
    pub upstream_timeout_secs: Option<String>,
    /// `--stream-idle-timeout-secs`
    pub stream_idle_timeout_secs: Option<String>,
    /// `--shutdown-grace-secs`
    pub shutdown_grace_secs: Option<String>,
    /// `--compat`: extra keys for backends with their own conventions (`openinference`,
    /// `langfuse`).
    pub compat: Option<String>,
    /// `--header-timeout-secs`
    pub header_timeout_secs: Option<String>,
    /// `--body-timeout-secs`
    pub body_timeout_secs: Option<String>,
    /// `--max-connections`
    pub max_connections: Option<String>,
    /// `--max-buffered-bytes`
    pub max_buffered_bytes: Option<String>,
    /// `--max-capture-bytes`
    pub max_capture_bytes: Option<String>,
    /// `--jsonl-max-bytes` (a size or `off`)
    pub jsonl_max_bytes: Option<String>,
    /// `--jsonl-keep`
    pub jsonl_keep: Option<String>,
}

/// Where one family of API paths is forwarded.
#[derive(Clone)]
pub struct Upstream {
    /// Base URL (scheme, authority and an optional path prefix such as `/api`).
    pub base: Uri,
    /// `gen_ai.provider.name` to record instead of the one derived from the host.
    pub provider_override: Option<String>,
}

/// Debug output (the config is logged and printed in tests) with URL credentials masked.
impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &mask_userinfo(&self.base.to_string()))
            .field("provider_override", &self.provider_override)
            .finish()
    }
}

/// Everything the proxy needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// JSONL output path; `None` when turned off.
    pub jsonl: Option<PathBuf>,
    /// Rotate the JSONL file before it would pass this size; `None` never rotates.
    pub jsonl_max_bytes: Option<u64>,
    /// Rotated JSONL files kept.
    pub jsonl_keep: usize,
    /// Upstream for OpenAI-compatible paths.
    pub upstream_openai: Upstream,
    /// Upstream for Anthropic paths.
    pub upstream_anthropic: Upstream,
    /// Upstream for Gemini paths.
    pub upstream_gemini: Upstream,
    /// `--no-content` given: capture no message content.
    pub no_content: bool,
    /// See [`DEFAULT_UPSTREAM_TIMEOUT_SECS`].
    pub upstream_timeout: Duration,
    /// See [`DEFAULT_STREAM_IDLE_TIMEOUT_SECS`].
    pub stream_idle_timeout: Duration,
    /// See [`DEFAULT_CONNECT_TIMEOUT_SECS`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_SHUTDOWN_GRACE_SECS`].
    pub shutdown_grace: Duration,
    /// See [`DEFAULT_MAX_CAPTURE_BYTES`].
    pub max_capture_bytes: usize,
    /// Default `service.name` for the exported resource.
    pub service_name: String,
    /// Compatibility key sets (off by default; gen_ai stays canonical).
    pub compat: llmtap_core::compat::Compat,
    /// See [`DEFAULT_HEADER_TIMEOUT_SECS`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT_SECS`].
    pub body_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_MAX_BUFFERED_BYTES`].
    pub max_buffered_bytes: usize,
}

/// A configuration value that could not be used. The message names the flag and variable, and
/// shows the value with any URL credentials masked.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid value {:?} for {flag} / {env}: {}",
    mask_userinfo(value),
    mask_userinfo(reason)
)]
pub struct ConfigError {
    /// The command-line flag.
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The value as given.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl Default for Config {
    /// The same values `load` gives with no flags and an empty environment (a unit test checks).
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8421)),
            jsonl: Some(PathBuf::from(DEFAULT_JSONL)),
            jsonl_max_bytes: Some(DEFAULT_MAX_BYTES),
            jsonl_keep: DEFAULT_KEEP_FILES,
            upstream_openai: Upstream {
                base: Uri::from_static(DEFAULT_UPSTREAM_OPENAI),
                provider_override: None,
            },
            upstream_anthropic: Upstream {
                base: Uri::from_static(DEFAULT_UPSTREAM_ANTHROPIC),
                provider_override: None,
            },
            upstream_gemini: Upstream {
                base: Uri::from_static(DEFAULT_UPSTREAM_GEMINI),
                provider_override: None,
            },
            no_content: false,
            upstream_timeout: Duration::from_secs(DEFAULT_UPSTREAM_TIMEOUT_SECS),
            stream_idle_timeout: Duration::from_secs(DEFAULT_STREAM_IDLE_TIMEOUT_SECS),
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            max_capture_bytes: DEFAULT_MAX_CAPTURE_BYTES,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            compat: llmtap_core::compat::Compat::default(),
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        }
    }
}

/// Picks flag, then env, then default, remembering names for the error message.
struct Setting<'a, E: EnvSource> {
    env_source: &'a E,
    flag: &'static str,
    env: &'static str,
}

impl<E: EnvSource> Setting<'_, E> {
    fn raw(&self, flag_value: Option<&String>, default: &str) -> String {
        flag_value
            .map(|v| v.trim().to_owned())
            .or_else(|| self.env_source.non_empty(self.env))
            .unwrap_or_else(|| default.to_owned())
    }

    fn error(&self, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            flag: self.flag,
            env: self.env,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

fn setting<'a, E: EnvSource>(
    env_source: &'a E,
    flag: &'static str,
    env: &'static str,
) -> Setting<'a, E> {
    Setting {
        env_source,
        flag,
        env,
    }
}

impl Config {
    /// Builds the configuration from flags and the environment.
    pub fn load(flags: &Overrides, env: &impl EnvSource) -> Result<Self, ConfigError> {
        let s = setting(env, "--listen", "LLMTAP_LISTEN");
        let raw = s.raw(flags.listen.as_ref(), DEFAULT_LISTEN);
        let listen = resolve_listen(&raw).map_err(|reason| s.error(&raw, reason))?;

        let s = setting(env, "--jsonl", ENV_JSONL);
        let raw = s.raw(flags.jsonl.as_ref(), DEFAULT_JSONL);
        if raw.is_empty() {
            return Err(s.error(&raw, "expected a file path or `off`"));
        }
        let jsonl = parse_jsonl_path(&raw);

        let s = setting(env, "--jsonl-max-bytes", ENV_JSONL_MAX_BYTES);
        let raw = s.raw(
            flags.jsonl_max_bytes.as_ref(),
            &DEFAULT_MAX_BYTES.to_string(),
        );
        let jsonl_max_bytes = parse_max_bytes(&raw).ok_or_else(|| {
            s.error(
                &raw,
                "expected a size such as 104857600, 100MiB or 500MB, or `off`",
            )
        })?;

        let s = setting(env, "--jsonl-keep", ENV_JSONL_KEEP);
        let raw = s.raw(flags.jsonl_keep.as_ref(), &DEFAULT_KEEP_FILES.to_string());
        let jsonl_keep = parse_keep(&raw).ok_or_else(|| {
            s.error(
                &raw,
                format!("expected a number of files from 0 to {MAX_KEEP_FILES}"),
            )
        })?;

        let provider_openai = setting(env, "--provider-openai", "LLMTAP_PROVIDER_OPENAI")
            .raw(flags.provider_openai.as_ref(), "");
        let provider_openai = Some(provider_openai).filter(|p| !p.is_empty());
        let upstream_openai = parse_upstream(
            setting(env, "--upstream-openai", "LLMTAP_UPSTREAM_OPENAI"),
            flags.upstream_openai.as_ref(),
            DEFAULT_UPSTREAM_OPENAI,
            provider_openai,
        )?;
        let upstream_anthropic = parse_upstream(
            setting(env, "--upstream-anthropic", "LLMTAP_UPSTREAM_ANTHROPIC"),
            flags.upstream_anthropic.as_ref(),
            DEFAULT_UPSTREAM_ANTHROPIC,
            None,
        )?;
        let upstream_gemini = parse_upstream(
            setting(env, "--upstream-gemini", "LLMTAP_UPSTREAM_GEMINI"),
            flags.upstream_gemini.as_ref(),
            DEFAULT_UPSTREAM_GEMINI,
            None,
        )?;

        let s = setting(env, "--compat", "LLMTAP_COMPAT");
        let raw = s.raw(flags.compat.as_ref(), "none");
        let compat =
            llmtap_core::compat::Compat::parse(&raw).map_err(|e| s.error(&raw, e.to_string()))?;

        let s = setting(env, "--no-content", "LLMTAP_NO_CONTENT");
        let no_content = if flags.no_content {
            true
        } else {
            let raw = s.raw(None, "false");
            parse_bool(&raw).ok_or_else(|| s.error(&raw, "expected true or false"))?
        };

        let upstream_timeout = parse_secs(
            setting(
                env,
                "--upstream-timeout-secs",
                "LLMTAP_UPSTREAM_TIMEOUT_SECS",
            ),
            flags.upstream_timeout_secs.as_ref(),
            DEFAULT_UPSTREAM_TIMEOUT_SECS,
        )?;
        let stream_idle_timeout = parse_secs(
            setting(
                env,
                "--stream-idle-timeout-secs",
                "LLMTAP_STREAM_IDLE_TIMEOUT_SECS",
            ),
            flags.stream_idle_timeout_secs.as_ref(),
            DEFAULT_STREAM_IDLE_TIMEOUT_SECS,
        )?;
        let shutdown_grace = parse_secs(
            setting(env, "--shutdown-grace-secs", "LLMTAP_SHUTDOWN_GRACE_SECS"),
            flags.shutdown_grace_secs.as_ref(),
            DEFAULT_SHUTDOWN_GRACE_SECS,
        )?;

        let s = setting(env, "--max-capture-bytes", "LLMTAP_MAX_CAPTURE_BYTES");
        let raw = s.raw(
            flags.max_capture_bytes.as_ref(),
            &DEFAULT_MAX_CAPTURE_BYTES.to_string(),
        );
        let max_capture_bytes = parse_bytes(&raw)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| s.error(&raw, "expected a size such as 8388608, 8MiB or 10MB"))?;

        let header_timeout = parse_secs(
            setting(env, "--header-timeout-secs", "LLMTAP_HEADER_TIMEOUT_SECS"),
            flags.header_timeout_secs.as_ref(),
            DEFAULT_HEADER_TIMEOUT_SECS,
        )?;
        let body_timeout = parse_secs(
            setting(env, "--body-timeout-secs", "LLMTAP_BODY_TIMEOUT_SECS"),
            flags.body_timeout_secs.as_ref(),
            DEFAULT_BODY_TIMEOUT_SECS,
        )?;
        let max_connections = parse_count(
            setting(env, "--max-connections", "LLMTAP_MAX_CONNECTIONS"),
            flags.max_connections.as_ref(),
            DEFAULT_MAX_CONNECTIONS,
        )?;
        let s = setting(env, "--max-buffered-bytes", "LLMTAP_MAX_BUFFERED_BYTES");
        let raw = s.raw(
            flags.max_buffered_bytes.as_ref(),
            &DEFAULT_MAX_BUFFERED_BYTES.to_string(),
        );
        let max_buffered_bytes = parse_bytes(&raw)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| s.error(&raw, "expected a size such as 67108864, 64MiB or 100MB"))?;

        Ok(Self {
            header_timeout,
            body_timeout,
            max_connections,
            max_buffered_bytes,
            listen,
            jsonl,
            jsonl_max_bytes,
            jsonl_keep,
            upstream_openai,
            upstream_anthropic,
            upstream_gemini,
            no_content,
            upstream_timeout,
            stream_idle_timeout,
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            shutdown_grace,
            max_capture_bytes,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            compat,
        })
    }
}

impl Config {
    /// The JSONL sink's settings (path and rotation), `None` when the file is off.
    pub fn jsonl_config(&self) -> Option<JsonlConfig> {
        self.jsonl
            .clone()
            .map(|path| JsonlConfig::new(path).with_rotation(self.jsonl_max_bytes, self.jsonl_keep))
    }
}

/// `HOST:PORT` where the host is an IP address (`127.0.0.1`, `[::1]`) or a name resolved now
/// (`localhost`, `myhost.internal`). A name that resolves to both families binds its first IPv4
/// address, which is where clients connecting to `localhost` look first on most systems.
pub fn resolve_listen(raw: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = raw.rsplit_once(':') else {
        return Err("expected HOST:PORT, e.g. 127.0.0.1:8421 or localhost:8421".to_owned());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number (0-65535)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("the host is missing: expected HOST:PORT, e.g. 127.0.0.1:8421".to_owned());
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?} ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("host {host:?} resolves to no address"))
}

fn parse_upstream<E: EnvSource>(
    s: Setting<'_, E>,
    flag: Option<&String>,
    default: &str,
    provider_override: Option<String>,
) -> Result<Upstream, ConfigError> {
    let raw = s.raw(flag, default);
    let base = raw
        .parse::<Uri>()
        .map_err(|e| s.error(&raw, format!("not a URL ({e})")))?;
    match base.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(s.error(&raw, "expected an http:// or https:// URL")),
    }
    if base.host().is_none() {
        return Err(s.error(&raw, "the URL has no host"));
    }
    if base.query().is_some() {
        return Err(s.error(&raw, "the URL must not carry a query string"));
    }
    Ok(Upstream {
        base,
        provider_override,
    })
}

fn parse_secs<E: EnvSource>(
    s: Setting<'_, E>,
    flag: Option<&String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let raw = s.raw(flag, &default.to_string());
    let secs = raw
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 1e9)
        .ok_or_else(|| s.error(&raw, "expected a positive number of seconds"))?;
    Ok(Duration::from_secs_f64(secs))
}

/// A positive whole number.
fn parse_count<E: EnvSource>(
    s: Setting<'_, E>,
    flag: Option<&String>,
    default: usize,
) -> Result<usize, ConfigError> {
    let raw = s.raw(flag, &default.to_string());
    raw.parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && *n <= (1 << 40))
        .ok_or_else(|| s.error(&raw, "expected a positive whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let cfg = Config::load(&Overrides::default(), &[("", ""); 0]).expect("defaults");
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            cfg.jsonl.as_deref(),
            Some(std::path::Path::new(DEFAULT_JSONL))
        );
        assert_eq!(cfg.upstream_openai.base.host(), Some("api.openai.com"));
        assert!(!cfg.no_content);
        let def = Config::default();
        assert_eq!(format!("{cfg:?}"), format!("{def:?}"));
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = [
            ("LLMTAP_LISTEN", "127.0.0.1:9000"),
            ("LLMTAP_JSONL", "off"),
            ("LLMTAP_UPSTREAM_OPENAI", "http://127.0.0.1:1234/api"),
        ];
        let cfg = Config::load(&Overrides::default(), &env).expect("env");
        assert_eq!(cfg.listen.port(), 9000);
        assert!(cfg.jsonl.is_none());
        assert_eq!(cfg.upstream_openai.base.path(), "/api");

        let flags = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            jsonl: Some("/tmp/x.jsonl".into()),
            ..Overrides::default()
        };
        let cfg = Config::load(&flags, &env).expect("flags");
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(
            cfg.jsonl.as_deref(),
            Some(std::path::Path::new("/tmp/x.jsonl"))
        );
    }

    #[test]
    fn bad_values_name_flag_and_variable() {
        for (env, needle) in [
            (("LLMTAP_LISTEN", "localhost"), "--listen / LLMTAP_LISTEN"),
            (
                ("LLMTAP_LISTEN", "localhost:http"),
                "--listen / LLMTAP_LISTEN",
            ),
            (
                ("LLMTAP_JSONL_MAX_BYTES", "0"),
                "--jsonl-max-bytes / LLMTAP_JSONL_MAX_BYTES",
            ),
            (
                ("LLMTAP_JSONL_KEEP", "-1"),
                "--jsonl-keep / LLMTAP_JSONL_KEEP",
            ),
            (
                ("LLMTAP_UPSTREAM_OPENAI", "ftp://x"),
                "LLMTAP_UPSTREAM_OPENAI",
            ),
            (
                ("LLMTAP_UPSTREAM_GEMINI", "http://h/?key=1"),
                "LLMTAP_UPSTREAM_GEMINI",
            ),
            (
                ("LLMTAP_UPSTREAM_TIMEOUT_SECS", "-1"),
                "LLMTAP_UPSTREAM_TIMEOUT_SECS",
            ),
            (("LLMTAP_NO_CONTENT", "maybe"), "LLMTAP_NO_CONTENT"),
            (
                ("LLMTAP_MAX_CAPTURE_BYTES", "lots"),
                "--max-capture-bytes / LLMTAP_MAX_CAPTURE_BYTES",
            ),
        ] {
            let err = Config::load(&Overrides::default(), &[env]).expect_err(env.0);
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
            assert!(!msg.contains("(none)"), "names a flag: {msg}");
        }
    }

    #[test]
    fn host_names_are_listen_hosts() {
        let cfg = Config::load(
            &Overrides {
                listen: Some("localhost:8498".into()),
                ..Overrides::default()
            },
            &[("", ""); 0],
        )
        .expect("localhost resolves");
        assert!(cfg.listen.ip().is_loopback(), "{}", cfg.listen);
        assert_eq!(cfg.listen.port(), 8498);
        let cfg = Config::load(&Overrides::default(), &[("LLMTAP_LISTEN", "[::1]:0")])
            .expect("bracketed v6");
        assert!(cfg.listen.is_ipv6());
    }

    #[test]
    fn jsonl_off_in_any_case_and_rotation_settings() {
        for off in ["OFF", "Off", "none", "FALSE"] {
            let cfg = Config::load(&Overrides::default(), &[("LLMTAP_JSONL", off)]).expect(off);
            assert!(cfg.jsonl.is_none(), "{off} turns the file off");
            assert!(cfg.jsonl_config().is_none());
        }
        let env = [
            ("LLMTAP_JSONL_MAX_BYTES", "1MiB"),
            ("LLMTAP_JSONL_KEEP", "20"),
            ("LLMTAP_MAX_CAPTURE_BYTES", "10MB"),
        ];
        let cfg = Config::load(&Overrides::default(), &env).expect("sizes with units");
        let jsonl = cfg.jsonl_config().expect("file on");
        assert_eq!(jsonl.max_bytes, Some(1 << 20));
        assert_eq!(jsonl.keep_files, 20);
        assert_eq!(cfg.max_capture_bytes, 10_000_000);
        let cfg =
            Config::load(&Overrides::default(), &[("LLMTAP_JSONL_MAX_BYTES", "off")]).expect("off");
        assert_eq!(cfg.jsonl_config().and_then(|j| j.max_bytes), None);
    }

    #[test]
    fn errors_never_show_url_credentials() {
        let err = Config::load(
            &Overrides::default(),
            &[(
                "LLMTAP_UPSTREAM_OPENAI",
                "http://bob:hunter2@127.0.0.1:1/?q=1",
            )],
        )
        .expect_err("query refused");
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("LLMTAP_UPSTREAM_OPENAI"), "{msg}");
        let cfg = Config::load(
            &Overrides::default(),
            &[("LLMTAP_UPSTREAM_OPENAI", "http://bob:hunter2@127.0.0.1:1")],
        )
        .expect("credentials are accepted");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
