//! `vigil demo --listen` on the network (a tablet in the room): the demo shows simulated data
//! only, so it says `allow_plaintext = true` for itself instead of being refused without [tls].

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use clap::Parser;
use vigil_daemon::demo::{Demo, DemoArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    demo: DemoArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_may_listen_beyond_this_machine() {
    let cli = Cli::parse_from(["vigil-demo", "--listen", "0.0.0.0:0"]);
    let demo = Demo::start(&cli.demo)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        demo.daemon.addr.ip().is_unspecified(),
        "{}",
        demo.daemon.addr
    );
    demo.stop().await;
}
