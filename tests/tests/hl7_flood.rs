//! Floods on the HL7 port: messages full of parameters Vigil has no vital for, refused
//! messages and connection churn must not write a log line each (W1); a connection flooding
//! valid messages as fast as TCP allows must not delay another device's alarm (W2); a message
//! replayed with its original times is no current evidence (W3).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use vigil_daemon::daemon::Options;
use vigil_tests::{Display, Room, VIEWER};

const WAIT: Duration = Duration::from_secs(30);

/// Every log line of this test binary, from the first call on.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .unwrap();
        buf
    })
    .clone()
}

/// How many log lines so far hold every one of `words`.
fn lines_with(words: &[&str]) -> usize {
    let logs = logs();
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .count()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Now as an HL7 timestamp (UTC).
fn hl7_now() -> String {
    hl7_ago(Duration::ZERO)
}

/// `ago` before now as an HL7 timestamp (UTC).
fn hl7_ago(ago: Duration) -> String {
    let at = std::time::SystemTime::now() - ago;
    let rfc = humantime::format_rfc3339_seconds(at).to_string();
    let digits: String = rfc.chars().filter(char::is_ascii_digit).collect();
    format!("{digits}+0000")
}

/// An MLLP-framed ORU^R01 with one SpO2, sent (MSH-7) and measured (OBX-14) at `at`.
fn spo2_oru(control: &str, at: &str, spo2: u32) -> Vec<u8> {
    let text = format!(
        "MSH|^~\\&|MON|WARD|||{at}||ORU^R01^ORU_R01|{control}|P|2.6\r\
         OBR|1|||182777000^monitoring of patient^SNOMED-CT|||{at}\r\
         OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||{at}\r"
    );
    let mut out = vec![0x0B];
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&[0x1C, 0x0D]);
    out
}

/// A connection whose ACKs are read and dropped, so that its writes never stall.
async fn sender(addr: SocketAddr) -> tokio::net::tcp::OwnedWriteHalf {
    let (mut read, write) = dial(addr).await.into_split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    write
}

/// An MLLP-framed ORU^R01 of a monitor with a normal SpO2, pulse, respiration and blood
/// pressure: eight OBX, each a reading.
fn busy_oru(control: u64, now: &str) -> Vec<u8> {
    let mut text = format!(
        "MSH|^~\\&|MON|WARD|||{now}||ORU^R01^ORU_R01|F{control}|P|2.6\r\
         OBR|1|||182777000^monitoring of patient^SNOMED-CT|||{now}\r"
    );
    let rows = [
        (
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            "97",
            "262688^MDC_DIM_PERCENT^MDC",
        ),
        (
            "149530^MDC_PULS_OXIM_PULS_RATE^MDC",
            "72",
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
        ),
        (
            "151562^MDC_RESP_RATE^MDC",
            "14",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
        ),
        (
            "147842^MDC_ECG_HEART_RATE^MDC",
            "72",
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
        ),
        (
            "151708^MDC_AWAY_CO2_ET^MDC",
            "38",
            "266016^MDC_DIM_MMHG^MDC",
        ),
        (
            "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            "120",
            "266016^MDC_DIM_MMHG^MDC",
        ),
        (
            "150022^MDC_PRESS_BLD_NONINV_DIA^MDC",
            "80",
            "266016^MDC_DIM_MMHG^MDC",
        ),
        (
            "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC",
            "93",
            "266016^MDC_DIM_MMHG^MDC",
        ),
    ];
    for (i, (code, value, unit)) in rows.iter().enumerate() {
        text.push_str(&format!(
            "OBX|{}|NM|{code}|1.1.1.{}|{value}|{unit}|||||R|||{now}\r",
            i + 1,
            i + 1
        ));
    }
    let mut out = vec![0x0B];
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&[0x1C, 0x0D]);
    out
}

/// An MLLP-framed ORU^R01 with `unknown` OBX of codes no table maps (distinct per message),
/// then one SpO2 of `spo2` if given.
fn unknown_oru(control: u64, unknown: usize, spo2: Option<u32>) -> Vec<u8> {
    let now = hl7_now();
    let mut text = format!("MSH|^~\\&|MON|WARD|||{now}||ORU^R01^ORU_R01|U{control}|P|2.6\r");
    for i in 0..unknown {
        text.push_str(&format!(
            "OBX|{}|NM|9{control:04}{i:02}^VENDOR_THING_{i}^99VND||{i}|x|||||R\r",
            i + 1
        ));
    }
    if let Some(spo2) = spo2 {
        text.push_str(&format!(
            "OBX|{}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R\r",
            unknown + 1
        ));
    }
    let mut out = vec![0x0B];
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&[0x1C, 0x0D]);
    out
}

/// A framed message of a version Vigil does not read: refused with an AE.
fn refused_oru(control: u64) -> Vec<u8> {
    let text = format!("MSH|^~\\&|MON|WARD|||20261130010000||ORU^R01|R{control}|P|9.9\rOBX|1|NM|150456^X^MDC||97|%|||||R\r");
    let mut out = vec![0x0B];
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&[0x1C, 0x0D]);
    out
}

/// Reads until `count` MLLP frames (ACKs) have come.
async fn read_acks(stream: &mut TcpStream, count: usize) {
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < count {
        let n = timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("ACKs in time")
            .unwrap();
        assert!(n > 0, "closed after {got} ACKs");
        got += buf[..n].iter().filter(|&&b| b == 0x1C).count();
    }
}

/// Connects to `addr`, retrying while the device binds it.
async fn dial(addr: SocketAddr) -> TcpStream {
    for _ in 0..500 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on {addr}");
}

/// Floods `addr` with valid messages as fast as TCP takes them (draining the ACKs) until `stop`;
/// returns how many were written.
fn flood(addr: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let stream = dial(addr).await;
        let (mut read, mut write) = stream.into_split();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let sent = AtomicU64::new(0);
        let mut batch = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let now = hl7_now();
            batch.clear();
            for _ in 0..50 {
                batch.extend(busy_oru(sent.fetch_add(1, Ordering::Relaxed), &now));
            }
            if write.write_all(&batch).await.is_err() {
                break;
            }
        }
        sent.load(Ordering::Relaxed)
    })
}

/// `name{device="DEVICE"}` on `/metrics` (0 if absent).
async fn metric(room: &Room, name: &str, device: &str) -> u64 {
    let mut tcp = TcpStream::connect(room.daemon.addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    timeout(WAIT, tcp.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let key = format!("{name}{{device=\"{device}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A fresh snapshot's alarms with `id`'s rule id `rule`, raised (not pending).
async fn raised(room: &Room, rule: &str) -> bool {
    let (_, snapshot) = Display::connect(room, VIEWER).await;
    snapshot["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"].as_str().is_some_and(|id| id.starts_with(rule)) && a["state"] != "pending")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hl7_flood_does_not_delay_another_devices_alarm_and_loses_nothing_uncounted() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("vigil-hl7flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let overrides = dir.join("patient.toml");
    std::fs::write(&overrides, "[rules.spo2-low]\ndelay = \"1s\"\n").unwrap();
    let room = Room::build(
        &format!("patient_overrides = \"{}\"\n", overrides.display()),
        &format!(
            "[[device]]\nid = \"monitor-1\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
        Options::default(),
    )
    .await;
    room.devices_ready().await;
    room.spo2(97, 70);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(([127, 0, 0, 1], port).into(), stop.clone());
    // The flood fills the core's channel for a while first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let low_at = Instant::now();
    let raised_in = timeout(WAIT, async {
        loop {
            room.spo2(80, 70);
            if raised(&room, "spo2-low").await {
                return low_at.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.await.unwrap();
    eprintln!("flood: {sent} messages; spo2-low raised after {raised_in:?} (delay 1 s)");
    assert!(
        raised_in.is_ok(),
        "spo2-low never raised while the flood ran"
    );
    // Every message the flood sent was read (8 readings) or counted as dropped: none lost
    // silently. The counts settle once the listener has read the rest and closed.
    let counts = timeout(WAIT, async {
        let mut last = (u64::MAX, u64::MAX);
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let now = (
                metric(&room, "vigil_readings_total", "monitor-1").await,
                metric(&room, "vigil_decode_errors_total", "monitor-1").await,
            );
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await
    .unwrap();
    let (readings, dropped) = counts;
    eprintln!(
        "flood: {readings} readings ({} messages) read, {dropped} messages dropped and counted",
        readings / 8
    );
    assert_eq!(readings % 8, 0, "{readings} readings");
    assert_eq!(
        readings / 8 + dropped,
        sent,
        "messages lost without a count"
    );
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_refusals_and_churn_are_counted_not_logged_each() {
    logs();
    let port = free_port();
    let room = Room::start(
        &format!(
            "[[device]]\nid = \"monitor-log\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
        Options::default(),
    )
    .await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    // 100 messages of 50 unmapped parameters each (5,000 unknown parameters, all distinct),
    // 100 messages refused, 50 connections opened and closed without a word.
    let mut monitor = dial(addr).await;
    for i in 0..100 {
        monitor
            .write_all(&unknown_oru(i, 50, Some(97)))
            .await
            .unwrap();
        monitor.write_all(&refused_oru(i)).await.unwrap();
    }
    read_acks(&mut monitor, 200).await;
    for _ in 0..50 {
        drop(dial(addr).await);
    }
    // The last message's SpO2 reaching the display: the core has handled all before it.
    monitor
        .write_all(&unknown_oru(100, 0, Some(91)))
        .await
        .unwrap();
    read_acks(&mut monitor, 1).await;
    let shown = timeout(Duration::from_secs(180), async {
        loop {
            let (_, snapshot) = Display::connect(&room, VIEWER).await;
            let vitals = snapshot["vitals"].as_array().unwrap().clone();
            if vitals
                .iter()
                .any(|v| v["device"] == "monitor-log" && v["value"].as_f64() == Some(91.0))
            {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    eprintln!("the monitor's last SpO2 shown after {shown:?}");
    assert!(
        shown.is_ok(),
        "the monitor's last SpO2 never reached the room"
    );
    // The listener logs the churn's closes after the clients go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let unknown = lines_with(&["unknown parameter", "monitor-log"]);
    let refused = lines_with(&["HL7 message refused", &port.to_string()]);
    let churn = lines_with(&["HL7 connection", &port.to_string()]);
    eprintln!("lines: {unknown} unknown-parameter, {refused} refused, {churn} connection");
    assert!(
        (1..=2).contains(&unknown),
        "{unknown} unknown-parameter lines"
    );
    assert!((1..=2).contains(&refused), "{refused} refusal lines");
    assert!((1..=4).contains(&churn), "{churn} connection lines");
    room.daemon.shutdown().await;
}

/// W3: the monitor reads 97 % and says so every 250 ms; a capture of the same monitor two
/// minutes earlier, during a dip (80 %, its original MSH-7 and OBX-14, which agree, so V5 passes
/// it), is played back as often on a second connection. The replayed 80 % is shown as stored,
/// never the patient now: `spo2-low` does not sound (on main it did, within its 2 s delay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_capture_is_stored_and_raises_no_alarm() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("vigil-hl7replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let overrides = dir.join("patient.toml");
    std::fs::write(&overrides, "[rules.spo2-low]\ndelay = \"2s\"\n").unwrap();
    let room = Room::build(
        &format!("patient_overrides = \"{}\"\n", overrides.display()),
        &format!(
            "[[device]]\nid = \"monitor-r\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
        Options::default(),
    )
    .await;
    let (mut display, _) = Display::connect(&room, VIEWER).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut monitor = sender(addr).await;
    let mut attacker = sender(addr).await;
    let captured = spo2_oru("OLD1", &hl7_ago(Duration::from_secs(120)), 80);
    let mut raised_at = None;
    // Three times the alarm's delay.
    for i in 0..24 {
        monitor
            .write_all(&spo2_oru(&format!("L{i}"), &hl7_now(), 97))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(125)).await;
        attacker.write_all(&captured).await.unwrap();
        if i == 0 {
            let replayed = display
                .until(|m| {
                    m["type"] == "reading" && m["device"] == "monitor-r" && m["value"] == 80.0
                })
                .await;
            assert!(
                replayed["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == "stored"),
                "the replayed reading is taken as current: {replayed}"
            );
        }
        tokio::time::sleep(Duration::from_millis(125)).await;
        if i % 4 == 3 && raised_at.is_none() && raised(&room, "spo2-low").await {
            raised_at = Some(i);
        }
    }
    assert_eq!(raised_at, None, "the replayed 80 % raised spo2-low");
    room.daemon.shutdown().await;
}

/// W4: while the monitor's own connection sends, clients that connect, send one message each
/// and hang up must not show its link as lost (on main every one of them could: the device's
/// link followed whichever connection last delivered, and one line per flap was logged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_coming_and_going_do_not_flap_the_monitors_link() {
    let port = free_port();
    let room = Room::start(
        &format!(
            "[[device]]\nid = \"monitor-c\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
        Options::default(),
    )
    .await;
    let (mut display, _) = Display::connect(&room, VIEWER).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut monitor = sender(addr).await;
    monitor
        .write_all(&spo2_oru("M0", &hl7_now(), 97))
        .await
        .unwrap();
    display
        .until(|m| m["type"] == "device" && m["device"] == "monitor-c" && m["link"] == "connected")
        .await;
    for i in 0..20 {
        let mut client = dial(addr).await;
        client
            .write_all(&spo2_oru(&format!("C{i}"), &hl7_now(), 97))
            .await
            .unwrap();
        read_acks(&mut client, 1).await;
        drop(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        monitor
            .write_all(&spo2_oru(&format!("M{}", i + 1), &hl7_now(), 97))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor
        .write_all(&spo2_oru("M-last", &hl7_now(), 93))
        .await
        .unwrap();
    let mut flaps = 0;
    display
        .until(|m| {
            if m["type"] == "device" && m["device"] == "monitor-c" && m["link"] == "disconnected" {
                flaps += 1;
            }
            m["type"] == "reading" && m["device"] == "monitor-c" && m["value"] == 93.0
        })
        .await;
    assert_eq!(flaps, 0, "the monitor's link was shown lost {flaps} times");
    // Its own connection closing still shows.
    drop(monitor);
    display
        .until(|m| {
            m["type"] == "device" && m["device"] == "monitor-c" && m["link"] == "disconnected"
        })
        .await;
    room.daemon.shutdown().await;
}

/// Item 4, held: a connection that keeps the device's link up with messages carrying nothing
/// Vigil reads as the patient (unmapped parameters only, or replays) cannot keep `not-current`
/// from sounding: currency is judged on evidence, not on messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_without_evidence_do_not_keep_a_vital_current() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("vigil-hl7current-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let overrides = dir.join("patient.toml");
    std::fs::write(&overrides, "[rules.not-current]\nafter = \"3s\"\n").unwrap();
    let room = Room::build(
        &format!("patient_overrides = \"{}\"\n", overrides.display()),
        &format!(
            "[[device]]\nid = \"monitor-n\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
        Options::default(),
    )
    .await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut monitor = sender(addr).await;
    monitor
        .write_all(&spo2_oru("N0", &hl7_now(), 97))
        .await
        .unwrap();
    let captured = spo2_oru("N0", &hl7_ago(Duration::from_secs(60)), 97);
    let raised_in = timeout(WAIT, async {
        let started = Instant::now();
        for i in 1u64.. {
            monitor
                .write_all(&unknown_oru(i, 3, None)[..])
                .await
                .unwrap();
            monitor.write_all(&captured).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            if i % 4 == 0 && raised(&room, "not-current").await {
                return started.elapsed();
            }
        }
        unreachable!()
    })
    .await;
    eprintln!("not-current raised after {raised_in:?} (after 3 s)");
    assert!(raised_in.is_ok(), "not-current never sounded");
    room.daemon.shutdown().await;
}
