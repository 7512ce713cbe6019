//! A child process on a real pseudo-terminal (openpty): it sees a terminal on stdin, stdout and
//! stderr and has it as its controlling terminal, so that `/dev/tty`, echo and Ctrl-C behave as
//! for an operator. A thread collects everything it draws; tests wait on that with deadlines.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

type Shared = Arc<(Mutex<Screen>, Condvar)>;

pub struct Pty {
    master: std::fs::File,
    child: Child,
    shared: Shared,
}

fn cloexec(fd: i32) {
    // SAFETY: fcntl on a descriptor this process just opened.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

impl Pty {
    /// Starts `command` on a new 80x24 terminal. Takes the command by value: a `Command` keeps
    /// its stdio descriptors open, and the end of the output is only seen once every copy of
    /// the terminal's child side is closed.
    pub fn spawn(mut command: Command) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two descriptors; the name and termios arguments may be null.
        let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        cloexec(master);
        cloexec(slave);
        // SAFETY: both descriptors are fresh and owned here.
        let (master, slave) = unsafe { (std::fs::File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // A session of its own with this terminal as its controlling terminal (stdin is
                // the terminal by now), as a shell gives the commands it runs.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("the command starts");
        drop(command);
        let shared: Shared = Arc::default();
        let mut reader = master.try_clone().unwrap();
        let sink = shared.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                // EIO once the child side is closed by everyone: the end of the output.
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*sink;
                let mut screen = lock.lock().unwrap();
                if n == 0 {
                    screen.closed = true;
                    cv.notify_all();
                    return;
                }
                screen.bytes.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        Pty { master, child, shared }
    }

    /// Waits until what was drawn satisfies `done` or the output ends, at most `deadline`:
    /// (the output, whether `done` held).
    async fn wait_for(&self, what: &str, deadline: Duration, done: impl Fn(&str) -> bool + Send + 'static) -> (String, bool) {
        let shared = self.shared.clone();
        let what = what.to_string();
        tokio::task::spawn_blocking(move || {
            let until = Instant::now() + deadline;
            let (lock, cv) = &*shared;
            let mut screen = lock.lock().unwrap();
            loop {
                let text = String::from_utf8_lossy(&screen.bytes).into_owned();
                if done(&text) || screen.closed {
                    let held = done(&text);
                    return (text, held);
                }
                let now = Instant::now();
                assert!(now < until, "no {what} within {deadline:?}:\n{text:?}");
                screen = cv.wait_timeout(screen, until - now).unwrap().0;
            }
        })
        .await
        .unwrap()
    }

    /// Waits until what was drawn satisfies `done`.
    pub async fn expect_with(&self, what: &str, deadline: Duration, done: impl Fn(&str) -> bool + Send + 'static) -> String {
        let (text, held) = self.wait_for(what, deadline, done).await;
        assert!(held, "the output ended without {what}:\n{text:?}");
        text
    }

    /// Waits until `text` has been drawn.
    pub async fn expect(&self, text: &str, deadline: Duration) -> String {
        let wanted = text.to_string();
        self.expect_with(&format!("{text:?}"), deadline, move |out| out.contains(&wanted)).await
    }

    /// Types at the terminal.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits for the end of the output, then for the process: (its status, all it drew).
    pub async fn finish(mut self, deadline: Duration) -> (ExitStatus, String) {
        let (text, _) = self.wait_for("end of the output", deadline, |_| false).await;
        // The terminal's child side is closed: the process has exited or is about to.
        let status = tokio::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            (status, self)
        })
        .await
        .unwrap()
        .0;
        (status, text)
    }
}

impl Drop for Pty {
    /// A test that failed midway leaves no process behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
