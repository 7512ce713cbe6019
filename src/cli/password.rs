//! Reading the login password: the first line of standard input (`--password-stdin`), or typed at
//! the terminal with echo off so that it is neither shown nor left in the scrollback.

use anyhow::Context;
use std::io::{BufRead, Write};

/// The first line of standard input, without its line end.
pub fn from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("the password on standard input is empty");
    }
    Ok(password)
}

/// Asks on the controlling terminal (`/dev/tty`, so that it works with stdout redirected). Ctrl-C
/// at the prompt turns echo back on before the command ends with `Exit::Interrupted`: a terminal
/// left without echo is a broken shell for the operator.
#[cfg(unix)]
pub async fn prompt(question: &str) -> anyhow::Result<String> {
    let no_tty = || anyhow::anyhow!("no terminal to ask for the password on: give it on standard input with --password-stdin");
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(|_| no_tty())?;
    let echo_off = EchoOff::new(&tty).ok_or_else(no_tty)?;
    let mut out = &tty;
    out.write_all(question.as_bytes())?;
    out.flush()?;
    // A thread of its own rather than spawn_blocking: after Ctrl-C the read is abandoned, and the
    // runtime would wait for a blocking task at exit.
    let reader = tty.try_clone()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(std::io::BufReader::new(reader).read_line(&mut line).map(|_| line));
    });
    let line = tokio::select! {
        line = rx => line.map_err(|_| anyhow::anyhow!("cannot read the password from the terminal"))?,
        _ = tokio::signal::ctrl_c() => {
            drop(echo_off);
            let _ = out.write_all(b"\n");
            return Err(super::Exit::Interrupted.into());
        }
    };
    drop(echo_off);
    let password = line.context("cannot read the password from the terminal")?.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password given");
    }
    Ok(password)
}

/// Echo off on a terminal while it lives; the saved settings come back on drop.
#[cfg(unix)]
struct EchoOff {
    fd: std::os::fd::RawFd,
    saved: libc::termios,
}

#[cfg(unix)]
impl EchoOff {
    fn new(tty: &std::fs::File) -> Option<EchoOff> {
        use std::os::fd::AsRawFd;
        let fd = tty.as_raw_fd();
        // SAFETY: tcgetattr fills the zeroed struct for a descriptor that `tty` keeps open.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut quiet = saved;
        // No echo, but the newline still echoed so that the answer ends its line as usual.
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above. TCSAFLUSH drops anything typed before the prompt appeared.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
        Some(EchoOff { fd, saved })
    }
}

#[cfg(unix)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: the descriptor outlives the guard (the guard borrows nothing, but every
        // caller drops it before the file).
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

#[cfg(not(unix))]
pub async fn prompt(_question: &str) -> anyhow::Result<String> {
    anyhow::bail!("give the password on standard input with --password-stdin")
}
