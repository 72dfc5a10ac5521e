//! Self-tests of `harness::Process`, and of servers outliving the thread that started them.

use std::process::Command;
use std::time::Duration;

use harness::{wait_until, Process, Redis};

fn shell(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

fn sleep() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("100");
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
    let mut process = Process::start(shell("trap '' TERM; exec sleep 100"))?;
    let status = process.kill9()?;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    let process = Process::start(sleep())?;
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

/// Run by [`a_killed_test_process_takes_its_children_with_it`] in a process of its own.
#[test]
#[ignore = "a helper for a_killed_test_process_takes_its_children_with_it"]
fn start_a_child_and_hang() {
    let child = Process::start(sleep()).unwrap();
    println!("child {}", child.id());
    std::thread::sleep(Duration::from_secs(100));
}

#[test]
fn a_killed_test_process_takes_its_children_with_it() -> anyhow::Result<()> {
    // The killed helper cannot delete its temp dir; this one goes instead.
    let tmp = tempfile::tempdir()?;
    let mut test = Command::new(std::env::current_exe()?)
        .env("TMPDIR", tmp.path())
        .args([
            "--ignored",
            "--exact",
            "start_a_child_and_hang",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    // The first lines are libtest's own.
    let child = std::io::BufRead::lines(std::io::BufReader::new(test.stdout.take().unwrap()))
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("child ").map(str::to_owned))
        .expect("the helper prints its child's pid");
    test.kill()?;
    test.wait()?;
    // Dead means gone, or a zombie not yet reaped by its new parent.
    wait_until(Duration::from_secs(10), "the orphaned child to die", || {
        std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |stat| {
            stat.rsplit(')').next().unwrap().trim().starts_with('Z')
        })
    })?;
    Ok(())
}
