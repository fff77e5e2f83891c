//! `exchange --out FILE --renew`: keep an Azure token file fresh for a job that outlives it.
//!
//! An Azure access token lives about an hour; a GitLab ID token lives as long as the job's
//! timeout, and Entra exchanges it again as often as asked while it is valid. So a long job only
//! has to ask again before its Azure token expires (`az login --federated-token` does not, hence
//! AADSTS700024 in long jobs). `--renew` makes the first exchange in the foreground, where its
//! failure fails the job's line, then starts a copy of itself in the background (hidden
//! `--renewer-of`) that exchanges again at 80% of each token's lifetime, replaces FILE
//! atomically, and stops by itself: when the job's shell is gone, when the GitLab token has
//! expired, or when Entra refuses. Transient failures are retried every 30 s while the token in
//! FILE is still valid. Nothing is left behind after the job.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::ArgMatches;
use gitlab_azure_oidc_host::Host;

use crate::exchange::{self, ExchangeArgs, Exchanged};
use crate::exit::Exit;
use crate::unix_now;

/// Seconds between attempts after a transient failure.
const RETRY_SECONDS: u64 = 30;

/// The process that ran `exchange --renew`: the job's shell. The renewer stops when that pid no
/// longer has the start time it had (it exited, or the pid was reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shell {
    pid: u32,
    start: u64,
}

impl Shell {
    /// The parent of this process.
    pub(crate) fn of_this_process() -> Result<Self, Exit> {
        let pid = std::os::unix::process::parent_id();
        let start = start_time(pid).ok_or_else(|| {
            Exit::usage(format!(
                "--renew cannot watch the job's shell (pid {pid}): /proc/{pid}/stat is not \
                 readable; --renew needs /proc"
            ))
        })?;
        Ok(Self { pid, start })
    }

    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks since boot). The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted after the last `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Seconds from now until a token that lives `expires_in` seconds is renewed: at 80% of its
/// lifetime, and at least a few minutes before it expires when the lifetime allows (an hour's
/// token is renewed with 12 minutes left), never sooner than a second.
pub(crate) fn renew_after(expires_in: u64) -> u64 {
    let margin = 300.min(expires_in / 2);
    (expires_in * 4 / 5).min(expires_in.saturating_sub(margin)).max(1)
}

/// `--renewer-of PID:START:AT`: the shell to watch and when to renew first.
fn parse(value: &str) -> Option<(Shell, u64)> {
    let mut parts = value.split(':').map(str::parse::<u64>);
    let (Some(Ok(pid)), Some(Ok(start)), Some(Ok(at)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((Shell { pid: u32::try_from(pid).ok()?, start }, at))
}

/// Starts the background renewer: this binary again, with the same arguments.
pub(crate) fn start(shell: &Shell, path: &Path, exchanged: &Exchanged) -> Result<(), Exit> {
    let cannot = |e: std::io::Error| Exit::usage(format!("--renew cannot start its renewer: {e}"));
    let after = renew_after(exchanged.access.expires_in);
    let child = Command::new(std::env::current_exe().map_err(cannot)?)
        .args(std::env::args_os().skip(1))
        .arg("--renewer-of")
        .arg(format!("{}:{}:{}", shell.pid, shell.start, unix_now() + after))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(cannot)?;
    eprintln!(
        "gitlab-azure-oidc: keeping {} fresh in the background (pid {}): next exchange in {after} \
         s, until the job's shell exits",
        path.display(),
        child.id()
    );
    Ok(())
}

/// The background renewer's loop. Returns when the shell is gone or the GitLab token expired
/// (success), or with Entra's refusal.
pub(crate) fn renewer(
    host: &Host,
    args: &ExchangeArgs,
    matches: &ArgMatches,
    value: &str,
) -> Result<(), Exit> {
    let (shell, mut renew_at) = parse(value)
        .ok_or_else(|| Exit::usage(format!("--renewer-of {value}: not PID:START:AT")))?;
    let path = args.out.as_ref().ok_or_else(|| Exit::usage("--renewer-of needs --out FILE"))?;
    // The token in FILE is valid until about here (the first renewal is at 80% of it).
    let mut valid_until = renew_at;
    let mut gitlab_expires_at: Option<u64> = None;
    loop {
        // Bounded: one check a second, and the shell's exit ends it.
        while unix_now() < renew_at {
            if !shell.alive() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if !shell.alive() {
            return Ok(());
        }
        if gitlab_expires_at.is_some_and(|exp| unix_now() >= exp) {
            eprintln!(
                "gitlab-azure-oidc: the GitLab token has expired, so {} is no longer renewed",
                path.display()
            );
            return Ok(());
        }
        let token = args.token.read(None)?;
        match exchange::run(host, args, matches, &token, &mut std::io::stderr()) {
            Ok(exchanged) => {
                exchange::deliver(args, &exchanged)?;
                let now = unix_now();
                valid_until = now + exchanged.access.expires_in;
                renew_at = now + renew_after(exchanged.access.expires_in);
                gitlab_expires_at = exchanged.gitlab_expires_at;
                if args.verbose {
                    eprintln!(
                        "gitlab-azure-oidc: renewed {} (expires in {} s)",
                        path.display(),
                        exchanged.access.expires_in
                    );
                }
            }
            Err(exit) if transient(&exit) && unix_now() + RETRY_SECONDS < valid_until => {
                eprintln!(
                    "gitlab-azure-oidc: renewing {} failed, retrying in {RETRY_SECONDS} s:",
                    path.display()
                );
                exit.report(false);
                renew_at = unix_now() + RETRY_SECONDS;
            }
            Err(exit) => {
                eprintln!("gitlab-azure-oidc: {} is no longer renewed:", path.display());
                return Err(exit);
            }
        }
    }
}

/// Failures worth another try: the network, and Entra asking to retry.
fn transient(exit: &Exit) -> bool {
    matches!(exit, Exit::Refused { kind, .. }
        if matches!(kind.as_str(), "unreachable" | "timeout" | "rate-limited" | "server-error"))
}

#[cfg(test)]
mod tests {
    use super::{parse, renew_after, start_time, Shell};

    #[test]
    fn tokens_are_renewed_at_80_percent_with_minutes_to_spare() {
        assert_eq!(renew_after(3599), 2879);
        assert_eq!(renew_after(5400), 4320);
        // Short lifetimes keep half of it in hand, and never wait less than a second.
        assert_eq!(renew_after(600), 300);
        assert_eq!(renew_after(4), 2);
        assert_eq!(renew_after(1), 1);
        assert_eq!(renew_after(0), 1);
    }

    #[test]
    fn the_watched_shell_is_this_process_parent_with_its_start_time() {
        let shell = Shell::of_this_process().unwrap();
        assert!(shell.alive());
        assert!(start_time(std::process::id()).is_some());
        assert!(
            !Shell { start: shell.start + 1, ..shell }.alive(),
            "a reused pid is not the shell"
        );
        assert_eq!(parse("12:34:56"), Some((Shell { pid: 12, start: 34 }, 56)));
        assert_eq!(parse("12:34"), None);
        assert_eq!(parse("12:34:56:78"), None);
        assert_eq!(parse("a:34:56"), None);
    }
}
