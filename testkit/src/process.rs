//! What `/proc` says about a process: CPU time, memory, parent, start time. The bench reports
//! the CPU and peak memory of the sidecar, of PostgreSQL and of itself; the shared test
//! cluster's bookkeeping tells a live process from a recycled pid by its start time.

use std::fs;
use std::io;

/// CPU times of a process, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcCpu {
    /// utime + stime: the process itself (all its threads).
    pub own: f64,
    /// cutime + cstime: the children it has waited for.
    pub children: f64,
    pub ppid: u32,
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses, hence the last `)`); index 0 is field 3, the state.
fn stat_fields(pid: u32) -> io::Result<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))?;
    Ok(after_comm.split_whitespace().map(str::to_owned).collect())
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`, as a number.
fn stat_field(fields: &[String], n: usize) -> io::Result<f64> {
    fields
        .get(n - 3)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short /proc stat"))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime (and cutime + cstime) of `pid`, from `/proc/<pid>/stat`.
pub fn proc_cpu(pid: u32) -> io::Result<ProcCpu> {
    let f = stat_fields(pid)?;
    let ticks = clock_ticks();
    Ok(ProcCpu {
        own: (stat_field(&f, 14)? + stat_field(&f, 15)?) / ticks,
        children: (stat_field(&f, 16)? + stat_field(&f, 17)?) / ticks,
        ppid: stat_field(&f, 4)? as u32,
    })
}

/// Start time of a process in clock ticks since boot (field 22): with the pid, it names one
/// process even after the pid is reused.
pub fn process_start(pid: i32) -> Option<u64> {
    let f = stat_fields(u32::try_from(pid).ok()?).ok()?;
    f.get(22 - 3)?.parse().ok()
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmHWM` (peak resident memory) or `VmRSS`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The live processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| proc_cpu(child).is_ok_and(|c| c.ppid == pid))
        .collect()
}

/// CPU seconds this process used so far.
pub fn self_cpu_seconds() -> f64 {
    proc_cpu(std::process::id()).map_or(f64::NAN, |c| c.own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let cpu = proc_cpu(me).expect("our own /proc/<pid>/stat");
        assert!(cpu.own >= 0.0 && cpu.ppid > 0, "{cpu:?}");
        assert!(proc_status_kib(me, "VmHWM").is_some_and(|kib| kib > 0));
        assert!(proc_status_kib(me, "NoSuchField").is_none());
        assert!(process_start(me as i32).is_some());
        assert!(children_of(cpu.ppid).contains(&me));
    }
}
