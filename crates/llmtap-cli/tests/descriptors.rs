//! Out of file descriptors, the proxy backs off instead of spinning in its accept loop, keeps
//! serving, and accepts again once descriptors free up. Runs the real binary under `prlimit` with
//! a small descriptor limit, so the test process itself is never starved.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};

/// Clock ticks of user + system CPU the process has used (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

fn healthz(addr: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn out_of_descriptors_the_proxy_backs_off_and_serves_again() -> Result<()> {
    if !Path::new("/usr/bin/prlimit").exists() && !Path::new("/bin/prlimit").exists() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "prlimit (util-linux) missing, and CI=true");
        eprintln!("SKIP: prlimit not found (util-linux)");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut child = Command::new("prlimit")
        .args(["--nofile=48:48", "--"])
        .arg(env!("CARGO_BIN_EXE_llmtap"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--jsonl", "off"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()?;
    let result = (|| -> Result<()> {
        let stderr = child.stderr.take().context("stderr")?;
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split([' ', '\n', ')', '/']).next())
            .with_context(|| format!("no address in {line:?}"))?
            .to_owned();
        // Drain stderr so the proxy never blocks writing its warnings.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });

        // Hold more connections than the proxy has descriptors for.
        let mut held = Vec::new();
        for _ in 0..80 {
            if let Ok(stream) = TcpStream::connect(&addr) {
                held.push(stream);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu_ticks(child.id())?;
        let window = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_ticks(child.id())? - before;
        let ticks_per_sec = 100.0; // USER_HZ on Linux
        let share = used as f64 / ticks_per_sec / window.elapsed().as_secs_f64();
        ensure!(
            share < 0.5,
            "out of descriptors the proxy used {share:.2} of a core"
        );

        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = loop {
            match healthz(&addr) {
                Ok(answer) if answer.starts_with("HTTP/1.1 200") => break answer,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                other => anyhow::bail!("not serving again: {other:?}"),
            }
        };
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        ensure!(body.contains("\"accept_errors\""), "{body}");
        ensure!(
            !body.contains("\"accept_errors\":0"),
            "no accept error counted: {body}"
        );
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
