//! Spawns long-running children so that they die with the test process.
//!
//! Drop stops servers when a test ends or panics, but not when a test runner kills a hung test binary;
//! then `PR_SET_PDEATHSIG` kills the children. That signal fires when the *thread* that spawned the
//! child exits, not the process, so all children are spawned from one thread that never exits: a server
//! started from `spawn_blocking` or a scoped thread must not die when that thread is recycled.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    // A process group of its own, so that a Ctrl-C at the terminal reaches only the test or demo
    // process, whose Drops then stop the children, rather than every server at once, mid-start.
    cmd.process_group(0);
    let parent = libc::pid_t::try_from(std::process::id()).expect("pid fits pid_t");
    // SAFETY: prctl and getppid are async-signal-safe and the closure does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The test process may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply, result) = mpsc::channel();
    spawner()
        .send(Box::new(move || {
            // The caller waits for this reply, so it cannot have gone away.
            let _ = reply.send(cmd.spawn());
        }))
        .map_err(|_| io::Error::other("the harness spawner thread has exited"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the harness spawner thread has exited"))?
}

fn spawner() -> &'static Sender<Job> {
    static SPAWNER: OnceLock<Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .expect("starting the harness spawner thread");
        jobs
    })
}
