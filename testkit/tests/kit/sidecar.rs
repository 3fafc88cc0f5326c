//! The process handle. The `outboxd` binary is not built for this package's tests, so a shell
//! plays it: the handle does not care what it runs (the spec tests run the real binary).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use testkit::{Receiver, Sidecar, TEST_SECRET, wait_until};

const SH: &str = "/bin/sh";
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn runs_a_program_with_a_clean_environment_and_a_log() {
    let mut sh = Sidecar::spawn(
        SH,
        "postgres://given",
        &[("OUTBOXD_GIVEN", "yes")],
        &[
            "-c",
            "env | grep -E '^(DATABASE_URL|OUTBOXD_)' | sort; exit 3",
        ],
    );
    let status = sh.wait_exit(WAIT).await.expect("exits");
    assert_eq!(status.code(), Some(3), "{}", sh.log());
    // Only what was given: nothing of the caller's DATABASE_URL or OUTBOXD_* gets through.
    assert_eq!(
        sh.log(),
        "DATABASE_URL=postgres://given\nOUTBOXD_GIVEN=yes\n"
    );
    assert!(!sh.is_running());
}

#[tokio::test]
async fn kill9_and_sigterm_end_the_process() {
    let mut sleeper = Sidecar::spawn(SH, "postgres://unused", &[], &["-c", "exec sleep 30"]);
    assert!(sleeper.is_running());
    assert!(sleeper.cpu_seconds().is_some() && sleeper.peak_rss_kib().is_some());
    sleeper.kill9();
    assert!(!sleeper.is_running());
    assert_eq!(sleeper.exit_status().unwrap().signal(), Some(libc::SIGKILL));
    assert!(
        sleeper.cpu_seconds().is_none(),
        "reaped: nothing left in /proc"
    );

    let mut sleeper = Sidecar::spawn(SH, "postgres://unused", &[], &["-c", "exec sleep 30"]);
    sleeper.sigterm();
    let status = sleeper.wait_exit(WAIT).await.expect("SIGTERM ends it");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[tokio::test]
async fn terminate_kills_what_ignores_sigterm() {
    let script = "trap '' TERM; echo trapped; while :; do sleep 1; done";
    let mut stubborn = Sidecar::spawn(SH, "postgres://unused", &[], &["-c", script]);
    let log = stubborn.log_path().to_owned();
    wait_until(WAIT, "the trap", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("trapped"))
    })
    .await;
    assert_eq!(stubborn.terminate(Duration::from_millis(300)).await, None);
    assert!(!stubborn.is_running());
}

#[tokio::test]
async fn finds_the_listen_address_and_waits_for_readiness() {
    // The receiver plays outboxd's listener: 200 on /readyz.
    let listener = Receiver::ok(TEST_SECRET).await;
    let script = format!(
        "echo starting; echo 'INFO outboxd::engine: outboxd started listen={}'; exec sleep 30",
        listener.addr()
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/one.log");
    let mut fake = Sidecar::command(SH)
        .args(["-c", &script])
        .log_to(&log)
        .spawn()
        .unwrap();
    let addr = fake.wait_started(WAIT).await.unwrap();
    assert_eq!((addr, fake.listen_addr()), (listener.addr(), Some(addr)));
    fake.wait_ready(addr, WAIT).await.unwrap();
    assert_eq!(listener.requests()[0].path, "/readyz");
    assert_eq!(fake.log_path(), log);

    let mut failing = Sidecar::spawn(SH, "postgres://unused", &[], &["-c", "echo boom; exit 1"]);
    let err = failing.wait_started(WAIT).await.unwrap_err();
    assert!(err.contains("exited") && err.contains("boom"), "{err}");
}
