//! Self-tests of `harness::Process`, and of servers outliving the thread that started them.

use std::process::Command;
use std::time::Duration;

use harness::{wait_until, Process, Redis};

fn shell(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn signals_reach_the_process_and_its_output_is_logged() -> anyhow::Result<()> {
    let mut process = Process::start(shell(
        "trap 'echo got TERM; exit 3' TERM; echo started; echo oops >&2; while :; do sleep 0.05; done",
    ))?;
    wait_until(Duration::from_secs(10), "output", || {
        process.log().contains("oops")
    })?;
    assert!(process.log().contains("started"));

    process.pause()?;
    assert_eq!(process.wait_timeout(Duration::from_millis(200))?, None);
    process.resume()?;
    process.terminate()?;
    let status = process
        .wait_timeout(Duration::from_secs(10))?
        .expect("exited");
    assert_eq!(status.code(), Some(3));
    assert!(process.log().contains("got TERM"));
    Ok(())
}

#[test]
fn kill9_and_drop_end_the_process() -> anyhow::Result<()> {
    let mut process = Process::start(shell("trap '' TERM; sleep 100"))?;
    let status = process.kill9()?;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    let process = Process::start(shell("sleep 100"))?;
    let proc_dir = format!("/proc/{}", process.id());
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(process);
    assert!(!std::path::Path::new(&proc_dir).exists());
    Ok(())
}

#[test]
fn a_server_outlives_the_thread_that_started_it() -> anyhow::Result<()> {
    let redis = std::thread::spawn(Redis::start).join().unwrap()?;
    // Long enough for a parent-death signal tied to the exited thread to have fired.
    std::thread::sleep(Duration::from_millis(300));
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_connection()?;
    let pong: String = redis::cmd("PING").query(&mut conn)?;
    assert_eq!(pong, "PONG");
    Ok(())
}
