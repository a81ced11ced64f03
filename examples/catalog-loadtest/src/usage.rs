//! CPU time and resident size of processes: this one (`getrusage`), and the server it drives
//! (`/proc/<pid>/stat` and `/proc/<pid>/status`). Linux only; elsewhere the readings are `None`.

use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::{SysconfVar, sysconf};

/// CPU time (user + system) this process has used so far, all threads.
pub fn own_cpu() -> Option<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(t.tv_usec()).ok()?))
    };
    tv(usage.user_time())?.checked_add(tv(usage.system_time())?)
}

/// CPU time (user + system) process `pid` has used so far, all threads.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat, clock_ticks_per_second()?)
}

/// Resident set size of process `pid` (`self` for this one), in bytes.
pub fn rss(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn clock_ticks_per_second() -> Option<u64> {
    let ticks = sysconf(SysconfVar::CLK_TCK).ok()??;
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may contain spaces: fields are counted after its `)`.
fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first, so utime (14) is the 12th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(
        Duration::from_secs(ticks / ticks_per_second)
            + Duration::from_nanos((ticks % ticks_per_second) * 1_000_000_000 / ticks_per_second),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_plus_system_time() {
        let line = "4242 (catalog server) S 1 4242 4242 0 -1 4194560 1650 0 0 0 250 130 0 0 20 0 \
                    9 0 123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_millis(3800)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn this_process_has_used_some_cpu_and_memory() {
        // Spin until this process has used a few clock ticks of CPU (/proc counts in 10 ms
        // ticks; a loaded machine may give a wall-clock spin almost none), bounded in time.
        let spin = std::time::Instant::now();
        while own_cpu().expect("getrusage") < Duration::from_millis(50)
            && spin.elapsed() < Duration::from_secs(10)
        {
            for i in 0..10_000u64 {
                std::hint::black_box(i);
            }
        }
        let own = own_cpu().expect("getrusage");
        assert!(own > Duration::ZERO);
        let by_proc = process_cpu(std::process::id()).expect("/proc/<pid>/stat");
        assert!(by_proc > Duration::ZERO);
        assert!(rss(None).is_some_and(|b| b > 0));
        assert!(rss(Some(std::process::id())).is_some_and(|b| b > 0));
    }
}
