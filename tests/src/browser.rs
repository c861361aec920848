//! A small Chrome DevTools Protocol client for the display tests: Debian's Chromium, headless,
//! driven over the WebSocket library the other tests use.
//!
//! Where Chromium is not installed the browser tests cannot run. With `VIGIL_REQUIRE_BROWSER`
//! set (CI sets it after installing Chromium) that is a failure; without it, a developer's
//! `cargo test` prints that they did not run and why.

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running headless Chromium.
pub struct Browser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _child: Child,
    profile: PathBuf,
}

/// One tab.
#[derive(Debug, Clone)]
pub struct Page {
    session: String,
}

fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VIGIL_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

impl Browser {
    /// Starts Chromium, or explains why the browser tests cannot run here.
    pub async fn launch() -> Option<Browser> {
        let Some(exe) = find_chromium() else {
            if std::env::var_os("VIGIL_REQUIRE_BROWSER").is_some() {
                panic!("Chromium is required for the display tests: apt-get install -y chromium (or set VIGIL_CHROMIUM)");
            }
            eprintln!("NOT RUN: the display tests need Chromium (apt-get install -y chromium); CI runs them");
            return None;
        };
        let profile = std::env::temp_dir().join(format!(
            "vigil-chromium-{}-{}",
            std::process::id(),
            crate::fastrand_u64()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("Chromium starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
            }
            panic!("Chromium exited before listening");
        })
        .await
        .expect("Chromium listens within 20 s");
        // Keep reading stderr so that Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Some(Browser {
            ws,
            next_id: 0,
            _child: child,
            profile,
        })
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        // An evaluation that meets the page while it replaces its own URL (the token taken out
        // of the address bar) is refused as "navigated"; it is asked again on the settled page.
        let mut attempts = 0;
        loop {
            match self.call_once(session, method, params.clone()).await {
                Ok(result) => return result,
                Err(e)
                    if method == "Runtime.evaluate"
                        && attempts < 20
                        && e.to_string().contains("navigated or closed") =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{method} failed: {e}"),
            }
        }
    }

    async fn call_once(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    return Err(e.clone());
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// Opens a 1280×800 tab at `url`.
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        let page = Page {
            session: attached["sessionId"].as_str().unwrap().to_string(),
        };
        let s = Some(page.session.as_str());
        self.call(s, "Page.enable", json!({})).await;
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        self.call(s, "Page.navigate", json!({"url": url})).await;
        page
    }

    /// Evaluates JavaScript in the page and returns its value.
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let r = self
            .call(
                Some(&page.session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy, failing with `what` after `within`.
    pub async fn wait_for(&mut self, page: &Page, expression: &str, within: Duration, what: &str) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self.eval(page, &format!("(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()")).await;
            if v == json!(true) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{what}: not within {within:?} ({expression})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the centre of the first element matching `selector` with real mouse events.
    pub async fn click(&mut self, page: &Page, selector: &str) {
        let rect = self
            .eval(
                page,
                &format!("(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"),
            )
            .await;
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                Some(&page.session),
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Writes a PNG screenshot of the page to `target/screenshots/NAME.png`.
    pub async fn screenshot(&mut self, page: &Page, name: &str) -> PathBuf {
        let r = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
