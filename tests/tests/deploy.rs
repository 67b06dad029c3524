//! `docker-compose.yml`, the `Dockerfile` and `collector-config/` are for our users; no Docker
//! engine runs here, so these tests read them and check every cross-reference: services, ports,
//! env, mounted config paths, pipeline components against the contrib distribution's list, and
//! that the proxy really accepts the environment compose gives it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use llmtap_tests::clients::repo_root;
use serde_yaml_ng::Value;

fn load(path: &str) -> Result<Value> {
    let full = repo_root().join(path);
    let text =
        std::fs::read_to_string(&full).with_context(|| format!("reading {}", full.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {path}"))
}

fn map<'a>(v: &'a Value, key: &str) -> Result<&'a serde_yaml_ng::Mapping> {
    v.get(key)
        .and_then(Value::as_mapping)
        .with_context(|| format!("`{key}` is not a mapping"))
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `${NAME:-default}` → default (what compose substitutes when the user sets nothing).
fn compose_default(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn service_env(service: &Value) -> Result<HashMap<String, String>> {
    let env = map(service, "environment")?;
    Ok(env
        .iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.as_str()?.to_owned(), compose_default(&value)))
        })
        .collect())
}

/// `host:container` port mappings of a service, as (host, container).
fn ports(service: &Value) -> Vec<(u16, u16)> {
    strs(service.get("ports"))
        .iter()
        .filter_map(|p| {
            let (host, container) = p.split_once(':')?;
            Some((host.parse().ok()?, container.parse().ok()?))
        })
        .collect()
}

/// (host, port) of a URL like `http://otel-collector:4318` or an endpoint `jaeger:4317`.
fn host_port(url: &str) -> Result<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("{url} names no port"))?;
    Ok((host.to_owned(), port.parse()?))
}

/// The component types the contrib distribution ships, by kind.
fn contrib_components() -> Result<BTreeMap<String, BTreeSet<String>>> {
    let text =
        std::fs::read_to_string(repo_root().join("collector-config/contrib-components.txt"))?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name), Some(_module)) = (words.next(), words.next(), words.next())
        else {
            bail!("bad line in contrib-components.txt: {line}");
        };
        out.entry(kind.to_owned())
            .or_default()
            .insert(name.to_owned());
    }
    Ok(out)
}

/// Checks one collector config: every component a pipeline names is defined, every defined
/// one is used, every type is in the contrib distribution, memory_limiter comes first.
fn check_collector_config(path: &str) -> Result<Value> {
    let config = load(path)?;
    let contrib = contrib_components()?;
    let service = config.get("service").context("no service section")?;
    let pipelines = map(service, "pipelines")?;
    ensure!(!pipelines.is_empty(), "{path}: no pipelines");
    let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, pipeline) in pipelines {
        let name = name.as_str().unwrap_or_default();
        for (section, kind) in [
            ("receivers", "receiver"),
            ("processors", "processor"),
            ("exporters", "exporter"),
        ] {
            let names = strs(pipeline.get(section));
            if section != "processors" {
                ensure!(
                    !names.is_empty(),
                    "{path}: pipeline {name} has no {section}"
                );
            }
            if section == "processors" && names.iter().any(|n| n == "memory_limiter") {
                ensure!(
                    names.first().map(String::as_str) == Some("memory_limiter"),
                    "{path}: memory_limiter must be the first processor of {name}"
                );
            }
            if names.is_empty() {
                continue;
            }
            let defined = map(&config, section)
                .with_context(|| format!("{path}: pipeline {name} uses {section}"))?;
            for component in names {
                ensure!(
                    defined.contains_key(component.as_str()),
                    "{path}: pipeline {name} uses undefined {kind} {component}"
                );
                let kind_name = component.split('/').next().unwrap_or_default();
                ensure!(
                    contrib.get(kind).is_some_and(|set| set.contains(kind_name)),
                    "{path}: {kind} type {kind_name} is not in the contrib distribution list"
                );
                used.entry(section).or_default().insert(component);
            }
        }
    }
    for section in ["receivers", "processors", "exporters"] {
        if let Ok(defined) = map(&config, section) {
            for key in defined.keys().filter_map(Value::as_str) {
                ensure!(
                    used.get(section).is_some_and(|u| u.contains(key)),
                    "{path}: {section} {key} is defined but no pipeline uses it"
                );
            }
        }
    }
    for extension in strs(service.get("extensions")) {
        ensure!(
            map(&config, "extensions")?.contains_key(extension.as_str()),
            "{path}: undefined extension {extension}"
        );
        let kind_name = extension.split('/').next().unwrap_or_default();
        ensure!(
            contrib
                .get("extension")
                .is_some_and(|set| set.contains(kind_name)),
            "{path}: extension {kind_name} not in the contrib distribution"
        );
    }
    Ok(config)
}

#[test]
fn collector_configs_are_complete_and_use_contrib_components() -> Result<()> {
    for path in [
        "collector-config/otelcol.yaml",
        "collector-config/agent.yaml",
        "collector-config/gateway.yaml",
    ] {
        check_collector_config(path)?;
    }
    Ok(())
}

#[test]
fn collector_config_checker_rejects_a_broken_config() -> Result<()> {
    let dir = repo_root().join("target/deploy-test");
    std::fs::create_dir_all(&dir)?;
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        "receivers: {otlp: {protocols: {grpc: {}}}}\nexporters: {jaegerthrift: {}}\n\
         service: {pipelines: {traces: {receivers: [otlp], exporters: [jaegerthrift, nope]}}}\n",
    )?;
    let relative = broken
        .strip_prefix(repo_root())?
        .to_string_lossy()
        .into_owned();
    let err = check_collector_config(&relative).expect_err("a broken config must fail");
    assert!(format!("{err}").contains("jaegerthrift"), "{err}");
    Ok(())
}

#[test]
fn compose_wires_proxy_collector_and_jaeger() -> Result<()> {
    let compose = load("docker-compose.yml")?;
    let services = map(&compose, "services")?;
    let service = |name: &str| {
        services
            .get(name)
            .with_context(|| format!("no service {name}"))
    };
    let (proxy, collector, jaeger) = (
        service("llmtap")?,
        service("otel-collector")?,
        service("jaeger")?,
    );

    // The proxy: built from our Dockerfile, listening where its port mapping points.
    assert_eq!(proxy.get("build").and_then(Value::as_str), Some("."));
    assert!(repo_root().join("Dockerfile").is_file());
    let env = service_env(proxy)?;
    let (_, listen_port) = host_port(env.get("LLMTAP_LISTEN").context("LLMTAP_LISTEN")?)?;
    assert!(
        ports(proxy).iter().any(|(_, c)| *c == listen_port),
        "proxy port mapping does not reach LLMTAP_LISTEN"
    );

    // The proxy reaches the collector only through the standard OTEL variables.
    let endpoint = env
        .get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .context("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    let (collector_host, collector_port) = host_port(endpoint)?;
    assert!(
        services.contains_key(collector_host.as_str()),
        "{collector_host} is no service"
    );
    assert_eq!(collector_host, "otel-collector");
    let protocol = env
        .get("OTEL_EXPORTER_OTLP_PROTOCOL")
        .context("protocol")?
        .as_str();
    // The env must be accepted by the real proxy configuration and exporter code.
    let config = llmtap_proxy::Config::load(&llmtap_proxy::Overrides::default(), &env)
        .context("the proxy rejects compose's environment")?;
    assert_eq!(config.listen.port(), listen_port);
    let otlp = llmtap_export::OtlpConfig::from_env(&env)?
        .context("compose's environment turns OTLP forwarding on")?;
    assert!(
        otlp.endpoint.starts_with(endpoint.as_str()),
        "{}",
        otlp.endpoint
    );

    // The collector: its config is mounted where its command reads it.
    let volumes = strs(collector.get("volumes"));
    let command = strs(collector.get("command"));
    let config_arg = command
        .iter()
        .find_map(|c| c.strip_prefix("--config="))
        .context("collector --config")?;
    let mount = volumes
        .iter()
        .find(|v| v.split(':').nth(1) == Some(config_arg))
        .context("collector config not mounted at --config")?;
    let source = mount.split(':').next().unwrap_or_default();
    assert!(repo_root().join(source).is_file(), "{source} missing");
    let collector_config = check_collector_config(source.trim_start_matches("./"))?;
    let receiver = collector_config
        .get("receivers")
        .and_then(|r| r.get("otlp"))
        .and_then(|o| o.get("protocols"))
        .context("otlp receiver protocols")?;
    let wanted = if protocol == "grpc" { "grpc" } else { "http" };
    let receiver_endpoint = receiver
        .get(wanted)
        .and_then(|p| p.get("endpoint"))
        .and_then(Value::as_str)
        .with_context(|| format!("collector has no otlp {wanted} receiver"))?;
    assert_eq!(host_port(receiver_endpoint)?.1, collector_port);

    // Collector → Jaeger: the exporter names the jaeger service on its OTLP gRPC port.
    let exporters = map(&collector_config, "exporters")?;
    let to_jaeger = exporters
        .iter()
        .find(|(k, _)| k.as_str().is_some_and(|k| k.starts_with("otlp")))
        .and_then(|(_, v)| v.get("endpoint"))
        .and_then(Value::as_str)
        .context("no OTLP exporter")?;
    let (jaeger_host, jaeger_port) = host_port(to_jaeger)?;
    assert!(services.contains_key(jaeger_host.as_str()));
    assert_eq!(jaeger_port, 4317, "Jaeger v2 takes OTLP gRPC on 4317");
    assert!(
        jaeger
            .get("image")
            .and_then(Value::as_str)
            .is_some_and(|i| i.starts_with("jaegertracing/jaeger:2.")),
        "Jaeger v2 all-in-one"
    );
    assert!(
        ports(jaeger).iter().any(|(_, c)| *c == 16686),
        "Jaeger UI port"
    );

    // File exporters write inside a mounted volume, and named volumes are declared.
    let declared = map(&compose, "volumes")?;
    for (name, exporter) in exporters {
        if name.as_str().is_some_and(|n| n.starts_with("file")) {
            let path = exporter
                .get("path")
                .and_then(Value::as_str)
                .context("file path")?;
            assert!(
                volumes.iter().any(|v| v
                    .split(':')
                    .nth(1)
                    .is_some_and(|target| path.starts_with(target))),
                "{path} is not on a mounted volume"
            );
        }
    }
    for svc in [proxy, collector] {
        for volume in strs(svc.get("volumes")) {
            let source = volume.split(':').next().unwrap_or_default();
            if !source.starts_with('.') && !source.starts_with('/') {
                assert!(
                    declared.contains_key(source),
                    "volume {source} not declared"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn dockerfile_builds_the_binary_and_runs_it_unprivileged() -> Result<()> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile"))?;
    let stages = text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM "));
    assert!(stages >= 2, "multi-stage");
    assert!(text.contains("cargo build --release --locked -p llmtap-cli"));
    let cli_manifest = std::fs::read_to_string(repo_root().join("crates/llmtap-cli/Cargo.toml"))?;
    assert!(
        cli_manifest.contains("name = \"llmtap\""),
        "the package builds bin llmtap"
    );
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default();
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .context("no USER in the runtime stage")?;
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "non-root: {user}"
    );
    let listen = runtime
        .split("LLMTAP_LISTEN=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .context("LLMTAP_LISTEN")?;
    let exposed = runtime
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .context("EXPOSE")?;
    assert_eq!(host_port(listen)?.1.to_string(), exposed.trim());
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/llmtap\"]"));
    assert!(text.contains("/out/llmtap") && runtime.contains("/usr/local/bin/llmtap"));
    Ok(())
}

#[test]
fn readme_quick_start_matches_compose() -> Result<()> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let compose = load("docker-compose.yml")?;
    assert!(readme.contains("docker compose up --build"));
    let services = map(&compose, "services")?;
    for (service, port) in [
        ("llmtap", 8421),
        ("jaeger", 16686),
        ("otel-collector", 4317),
        ("otel-collector", 4318),
    ] {
        let svc = services.get(service).context("service")?;
        assert!(
            ports(svc).iter().any(|(h, _)| *h == port),
            "{service}:{port}"
        );
        assert!(
            readme.contains(&format!("localhost:{port}")),
            "README does not mention localhost:{port}"
        );
    }
    assert!(Path::new(&repo_root().join("collector-config/otelcol.yaml")).is_file());
    Ok(())
}
