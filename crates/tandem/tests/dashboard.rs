//! The dashboard as an operator sees it: a real cluster of `tandem` processes, the view
//! service's dashboard open in headless Chromium (driven over WebDriver by chromedriver), the
//! primary killed, and the page must show the new view and the reason of the change within two
//! seconds. A screenshot is saved as `target/dashboard-failover.png`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them); where
//! the build found them missing the test is ignored with the reason (crates/tandem/build.rs);
//! under CI it runs and fails.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Proc, free_port, wait_for};

/// A minimal blocking HTTP/1.1 exchange (the WebDriver endpoint and the admin endpoint both
/// answer with a Content-Length and close on `Connection: close`).
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let (code, text) = http_raw(addr, method, path, body)?;
    if code >= 400 {
        return Err(std::io::Error::other(format!(
            "{method} {path}: HTTP {code}: {text}"
        )));
    }
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver does not close the connection after its answer: read by Content-Length.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let header_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed in the headers"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..header_end]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status code"))?;
    let length: Option<usize> = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    });
    loop {
        if length.is_some_and(|len| raw.len() - header_end >= len) {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break; // closed: the body is what arrived
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let end = length.map_or(raw.len(), |len| (header_end + len).min(raw.len()));
    Ok((
        code,
        String::from_utf8_lossy(&raw[header_end..end]).into_owned(),
    ))
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    addr: String,
    session: Option<String>,
}

impl Driver {
    fn start(chromedriver: &Path, chromium: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut driver = Driver {
            child,
            addr: format!("127.0.0.1:{port}"),
            session: None,
        };
        assert!(
            wait_for(Duration::from_secs(20), || http(
                &driver.addr,
                "GET",
                "/status",
                None
            )
            .is_ok_and(|s| s["value"]["ready"] == json!(true))),
            "chromedriver did not become ready"
        );
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        }}});
        let created = http(&driver.addr, "POST", "/session", Some(&capabilities))
            .expect("create a WebDriver session");
        let session = created["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        driver.session = Some(session);
        driver
    }

    fn call(&self, method: &str, command: &str, body: Option<&Value>) -> Value {
        let session = self.session.as_deref().expect("session");
        let path = format!("/session/{session}{command}");
        http(&self.addr, method, &path, body).unwrap_or_else(|e| panic!("WebDriver {command}: {e}"))
            ["value"]
            .clone()
    }

    fn navigate(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    fn screenshot(&self, path: &Path) {
        let encoded = self.call("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("base64 PNG"));
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = http_raw(&self.addr, "DELETE", &format!("/session/{session}"), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// `target/` of this build: the test binary's tandem lives in `target/<profile>/tandem`.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tandem"))
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/tandem")
        .to_path_buf()
}

fn admin_status(addr: &str) -> Option<Value> {
    http(addr, "GET", "/status", None).ok()
}

/// What the dashboard currently shows for group 0: view number, primary, newest reason.
const READ_PAGE: &str = r#"
  const card = document.getElementById("group-0");
  if (!card) return null;
  const newest = card.querySelector(".timeline li");
  return {
    viewnum: Number(card.querySelector(".viewnum").textContent),
    primary: card.querySelector(".primary").textContent,
    reason: newest ? newest.querySelector(".reason").textContent : "",
  };
"#;

#[test]
#[cfg_attr(
    not(all(has_chromium, has_chromedriver)),
    ignore = "needs chromium and chromedriver on PATH (Debian packages chromium, chromium-driver)"
)]
fn dashboard_shows_failover_and_its_reason_within_two_seconds() {
    let (Some(chromium), Some(chromedriver)) = (on_path("chromium"), on_path("chromedriver"))
    else {
        panic!(
            "the dashboard browser test needs chromium and chromedriver on PATH \
             (Debian packages chromium and chromium-driver; .ci/run installs them)"
        );
    };
    let vs_port = free_port();
    let vs_addr = format!("127.0.0.1:{vs_port}");
    let admin = format!("127.0.0.1:{}", free_port());
    let coordinator_admin = format!("127.0.0.1:{}", free_port());
    let _vs = Proc::spawn(
        "vs",
        &[
            "viewserver".into(),
            "--listen".into(),
            vs_addr.clone(),
            "--admin".into(),
            admin.clone(),
            "--coordinator-admin".into(),
            coordinator_admin.clone(),
        ],
    );
    let mut servers = Vec::new();
    let mut ids = Vec::new();
    for i in 0..2 {
        let listen = format!("127.0.0.1:{}", free_port());
        servers.push(Proc::spawn(
            &format!("s{i}"),
            &[
                "server".into(),
                "--listen".into(),
                listen.clone(),
                "--viewserver".into(),
                vs_addr.clone(),
            ],
        ));
        ids.push(listen);
        if i == 0 {
            // Server 0 must become the first primary (V5).
            assert!(wait_for(Duration::from_secs(15), || admin_status(&admin)
                .is_some_and(|s| s["groups"][0]["primary"] == json!(ids[0]))));
        }
    }
    let _coordinator = Proc::spawn(
        "coord",
        &[
            "coordinator".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--viewserver".into(),
            vs_addr,
            "--admin".into(),
            coordinator_admin,
        ],
    );
    assert!(
        wait_for(Duration::from_secs(15), || admin_status(&admin)
            .is_some_and(|s| s["groups"][0]["acked"] == json!(true)
                && s["groups"][0]["backups"] == json!([ids[1]]))),
        "the cluster did not form: {:?}",
        admin_status(&admin)
    );
    let before = admin_status(&admin).expect("status")["groups"][0]["viewnum"]
        .as_u64()
        .expect("viewnum");

    let driver = Driver::start(&chromedriver, &chromium);
    driver.navigate(&format!("http://{admin}/"));
    assert!(
        wait_for(
            Duration::from_secs(10),
            || driver.script(READ_PAGE)["viewnum"] == json!(before)
        ),
        "the dashboard did not show view {before}: {:?}",
        driver.script(READ_PAGE)
    );

    servers[0].kill();
    let killed = Instant::now();
    let mut page = Value::Null;
    let shown = wait_for(Duration::from_secs(2), || {
        page = driver.script(READ_PAGE);
        page["viewnum"].as_u64().is_some_and(|v| v > before)
            && page["primary"] == json!(ids[1])
            && page["reason"].as_str().is_some_and(|r| {
                r.contains(&format!("primary {} missed ", ids[0])) && r.contains(" pings")
            })
    });
    let elapsed = killed.elapsed();
    let screenshot = target_dir().join("dashboard-failover.png");
    driver.screenshot(&screenshot);
    println!(
        "dashboard showed the failover after {elapsed:?}; screenshot: {}",
        screenshot.display()
    );
    assert!(
        shown,
        "within 2 s of killing {} the page showed {page}",
        ids[0]
    );
}
