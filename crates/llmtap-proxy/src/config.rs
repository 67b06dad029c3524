//! Proxy configuration: one precedence order (flag > `LLMTAP_*` env > default) and loud failures.
//!
//! Every setting's name, flag, default and parser come from [`llmtap_core::settings`]; flags
//! arrive as raw strings so a bad flag and a bad env value produce the same one-line error, which
//! the binary turns into exit code 64 (EX_USAGE).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use llmtap_core::env::EnvSource;
use llmtap_core::settings::{self, Setting};
use llmtap_core::userinfo::mask_userinfo;
use llmtap_export::JsonlConfig;

/// A configuration value that could not be used: names the flag and the variable, shows the
/// value with any URL credentials masked (one line).
pub use llmtap_core::settings::SettingError as ConfigError;

/// Time allowed to open a TCP (and TLS) connection to an upstream (not a setting).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` set one.
pub const DEFAULT_SERVICE_NAME: &str = "llmtap-proxy";

/// Raw values from command-line flags, by setting; a setting not here was not given. A switch
/// (`--no-content`) given is the value `true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    values: BTreeMap<&'static str, String>,
}

impl Overrides {
    /// No flag given.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same, with `setting`'s flag given as `value`.
    pub fn with(mut self, setting: &Setting, value: impl Into<String>) -> Self {
        self.set(setting, value);
        self
    }

    /// Gives `setting`'s flag as `value`.
    pub fn set(&mut self, setting: &Setting, value: impl Into<String>) {
        self.values.insert(setting.env, value.into());
    }

    /// Gives `setting`'s flag as `value` unless it is given already.
    pub fn set_default(&mut self, setting: &Setting, value: impl Into<String>) {
        self.values
            .entry(setting.env)
            .or_insert_with(|| value.into());
    }

    /// The value given for `setting`'s flag.
    pub fn get(&self, setting: &Setting) -> Option<&str> {
        self.values.get(setting.env).map(String::as_str)
    }
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

/// Everything the proxy needs to run. Each field's default, meaning and variable are those of
/// the [`settings`] constant named after it.
#[derive(Debug, Clone)]
pub struct Config {
    /// [`settings::LISTEN`].
    pub listen: SocketAddr,
    /// [`settings::JSONL`]; `None` when turned off.
    pub jsonl: Option<PathBuf>,
    /// [`settings::JSONL_MAX_BYTES`]; `None` never rotates.
    pub jsonl_max_bytes: Option<u64>,
    /// [`settings::JSONL_KEEP`].
    pub jsonl_keep: usize,
    /// [`settings::UPSTREAM_OPENAI`] with [`settings::PROVIDER_OPENAI`].
    pub upstream_openai: Upstream,
    /// [`settings::UPSTREAM_ANTHROPIC`].
    pub upstream_anthropic: Upstream,
    /// [`settings::UPSTREAM_GEMINI`].
    pub upstream_gemini: Upstream,
    /// [`settings::NO_CONTENT`]: capture no message content.
    pub no_content: bool,
    /// [`settings::UPSTREAM_TIMEOUT_SECS`].
    pub upstream_timeout: Duration,
    /// [`settings::STREAM_IDLE_TIMEOUT_SECS`].
    pub stream_idle_timeout: Duration,
    /// See [`DEFAULT_CONNECT_TIMEOUT_SECS`].
    pub connect_timeout: Duration,
    /// [`settings::SHUTDOWN_GRACE_SECS`].
    pub shutdown_grace: Duration,
    /// [`settings::AGENT_QUIET_SECS`]: an idle agent invocation's span ends after this (ADR 0014).
    pub agent_quiet: Duration,
    /// [`settings::MAX_CAPTURE_BYTES`].
    pub max_capture_bytes: usize,
    /// Default `service.name` for the exported resource.
    pub service_name: String,
    /// [`settings::COMPAT`] (off by default; gen_ai stays canonical).
    pub compat: llmtap_core::compat::Compat,
    /// [`settings::HEADER_TIMEOUT_SECS`].
    pub header_timeout: Duration,
    /// [`settings::BODY_TIMEOUT_SECS`].
    pub body_timeout: Duration,
    /// [`settings::MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// [`settings::MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// [`settings::UPSTREAM_MAX_CONNECTING`].
    pub upstream_max_connecting: usize,
    /// [`settings::MAX_BUFFERED_BYTES`].
    pub max_buffered_bytes: usize,
}

impl Config {
    /// Builds the configuration from flags and the environment.
    pub fn load(flags: &Overrides, env: &impl EnvSource) -> Result<Self, ConfigError> {
        let flag = |s: &Setting| flags.get(s);

        let s = &settings::LISTEN;
        let raw = s.raw(flag(s), env).unwrap_or_default();
        let listen = resolve_listen(&raw).map_err(|reason| s.error(&raw, reason))?;

        let jsonl = settings::JSONL.read_path_or_off(flag(&settings::JSONL), env)?;
        let jsonl_max_bytes =
            settings::JSONL_MAX_BYTES.read_size_or_off(flag(&settings::JSONL_MAX_BYTES), env)?;
        let jsonl_keep = settings::JSONL_KEEP.read_count(flag(&settings::JSONL_KEEP), env)?;

        let provider_openai = settings::PROVIDER_OPENAI
            .raw(flag(&settings::PROVIDER_OPENAI), env)
            .filter(|p| !p.is_empty());
        let upstream_openai =
            parse_upstream(&settings::UPSTREAM_OPENAI, flags, env, provider_openai)?;
        let upstream_anthropic = parse_upstream(&settings::UPSTREAM_ANTHROPIC, flags, env, None)?;
        let upstream_gemini = parse_upstream(&settings::UPSTREAM_GEMINI, flags, env, None)?;

        let compat = settings::COMPAT.read_compat(flag(&settings::COMPAT), env)?;

        let no_content =
            settings::NO_CONTENT.read_bool(flag(&settings::NO_CONTENT).is_some(), env)?;

        let secs = |s: &'static Setting| s.read_secs(flags.get(s), env);
        let upstream_timeout = secs(&settings::UPSTREAM_TIMEOUT_SECS)?;
        let stream_idle_timeout = secs(&settings::STREAM_IDLE_TIMEOUT_SECS)?;
        let shutdown_grace = secs(&settings::SHUTDOWN_GRACE_SECS)?;
        let agent_quiet = secs(&settings::AGENT_QUIET_SECS)?;
        let header_timeout = secs(&settings::HEADER_TIMEOUT_SECS)?;
        let body_timeout = secs(&settings::BODY_TIMEOUT_SECS)?;

        let max_capture_bytes =
            settings::MAX_CAPTURE_BYTES.read_size(flag(&settings::MAX_CAPTURE_BYTES), env)?;
        let max_connections =
            settings::MAX_CONNECTIONS.read_count(flag(&settings::MAX_CONNECTIONS), env)?;
        let max_in_flight =
            settings::MAX_IN_FLIGHT.read_count(flag(&settings::MAX_IN_FLIGHT), env)?;
        let upstream_max_connecting = settings::UPSTREAM_MAX_CONNECTING
            .read_count(flag(&settings::UPSTREAM_MAX_CONNECTING), env)?;
        let max_buffered_bytes =
            settings::MAX_BUFFERED_BYTES.read_size(flag(&settings::MAX_BUFFERED_BYTES), env)?;

        Ok(Self {
            header_timeout,
            body_timeout,
            max_connections,
            max_in_flight,
            upstream_max_connecting,
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
            agent_quiet,
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

fn parse_upstream(
    s: &'static Setting,
    flags: &Overrides,
    env: &impl EnvSource,
    provider_override: Option<String>,
) -> Result<Upstream, ConfigError> {
    let raw = s.raw(flags.get(s), env).unwrap_or_default();
    let base = raw
        .parse::<Uri>()
        .map_err(|e| s.error(&raw, format!("not a URL ({e})")))?;
    match base.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(s.invalid(&raw)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let cfg = Config::load(&Overrides::default(), &[("", ""); 0]).expect("defaults");
        assert_eq!(
            Some(cfg.listen.to_string().as_str()),
            settings::LISTEN.default
        );
        assert_eq!(
            cfg.jsonl.as_deref(),
            Some(std::path::Path::new(settings::DEFAULT_JSONL_PATH))
        );
        assert_eq!(cfg.upstream_openai.base.host(), Some("api.openai.com"));
        assert!(!cfg.no_content);
        assert_eq!(cfg.upstream_timeout, Duration::from_secs(600));
        assert_eq!(cfg.max_capture_bytes, 8 << 20);
        assert_eq!(cfg.max_buffered_bytes, 64 << 20);
        assert_eq!(cfg.max_connections, 4096);
        assert_eq!(cfg.jsonl_max_bytes, Some(100 << 20));
        assert_eq!(cfg.jsonl_keep, 5);
        assert!(cfg.compat.is_off());
    }

    #[test]
    fn every_flag_is_read() {
        // A value its parser refuses, given as each flag in turn, fails naming that flag.
        for s in settings::proxy_flags() {
            let bad = match s.kind {
                settings::Kind::Bool | settings::Kind::Name => continue,
                settings::Kind::CompatList => "bogus",
                _ => "",
            };
            let err =
                Config::load(&Overrides::new().with(s, bad), &[("", ""); 0]).expect_err(s.env);
            assert!(err.to_string().contains(&s.names()), "{err}");
        }
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

        let flags = Overrides::new()
            .with(&settings::LISTEN, "127.0.0.1:9001")
            .with(&settings::JSONL, "/tmp/x.jsonl");
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
            &Overrides::new().with(&settings::LISTEN, "localhost:8498"),
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
        for off in ["OFF", "Off", "off", "none", "None", "FALSE", " off "] {
            let cfg = Config::load(&Overrides::default(), &[("LLMTAP_JSONL", off)]).expect(off);
            assert!(cfg.jsonl.is_none(), "{off} turns the file off");
            assert!(cfg.jsonl_config().is_none());
            let flags = Overrides::new().with(&settings::JSONL, off);
            let cfg = Config::load(&flags, &[("", ""); 0]).expect(off);
            assert!(cfg.jsonl.is_none(), "--jsonl {off} turns the file off");
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
