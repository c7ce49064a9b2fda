//! Where the CPU went during a measurement, from `/proc`: Kassa's threads, the load
//! generator's, and everything else on the machine (PostgreSQL, other programs), in cores.
//!
//! In-process, threads are told apart by name: the load generator's runtime names its threads
//! [`LOAD_THREAD_NAME`] and the main thread drives it; every other thread of the process is
//! Kassa's (its runtime, the SQLite writer, blocking threads). With Kassa in a child process,
//! the child's totals are Kassa's and this whole process is the load generator's.
//!
//! Times in `/proc` are in clock ticks of `USER_HZ`, 100 on Linux for every architecture the
//! project runs on (reading it would need `sysconf`, an unsafe call).

use std::time::{Duration, Instant};

/// The name of the load generator's runtime threads.
pub const LOAD_THREAD_NAME: &str = "bench-load";

const TICKS_PER_SECOND: f64 = 100.0;

/// Whose threads are Kassa's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Kassa runs inside this process.
    InProcess,
    /// Kassa is the child process with this pid.
    Child(u32),
}

/// Cumulative CPU ticks at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    kassa: u64,
    load: u64,
    machine_busy: u64,
}

/// CPU spent over one or more intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    kassa: u64,
    load: u64,
    machine_busy: u64,
    wall: Duration,
}

/// Average cores busy over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cores {
    pub kassa: f64,
    pub load: f64,
    /// The rest of the machine: PostgreSQL's processes, anything else running.
    pub other: f64,
}

impl Sample {
    /// Now; `None` where `/proc` cannot be read (not Linux).
    pub fn take(scope: Scope) -> Option<Sample> {
        let at = Instant::now();
        let (kassa, load) = match scope {
            Scope::Child(pid) => (
                process_ticks(&format!("/proc/{pid}/stat"))?,
                process_ticks("/proc/self/stat")?,
            ),
            Scope::InProcess => split_own_threads()?,
        };
        Some(Sample {
            at,
            kassa,
            load,
            machine_busy: machine_busy_ticks()?,
        })
    }

    /// What was spent from `self` to `later`.
    pub fn until(&self, later: &Sample) -> Spent {
        Spent {
            kassa: later.kassa.saturating_sub(self.kassa),
            load: later.load.saturating_sub(self.load),
            machine_busy: later.machine_busy.saturating_sub(self.machine_busy),
            wall: later.at.saturating_duration_since(self.at),
        }
    }
}

impl Spent {
    pub fn add(&mut self, other: &Spent) {
        self.kassa += other.kassa;
        self.load += other.load;
        self.machine_busy += other.machine_busy;
        self.wall += other.wall;
    }

    /// CPU seconds Kassa spent.
    pub fn kassa_seconds(&self) -> f64 {
        self.kassa as f64 / TICKS_PER_SECOND
    }

    /// Average cores; `None` for an empty interval.
    pub fn cores(&self) -> Option<Cores> {
        let seconds = self.wall.as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let (kassa, load) = (cores(self.kassa), cores(self.load));
        Some(Cores {
            kassa,
            load,
            other: (cores(self.machine_busy) - kassa - load).max(0.0),
        })
    }
}

/// utime + stime of one `/proc/…/stat` file.
fn process_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let (_, ticks) = parse_stat(&text)?;
    Some(ticks)
}

/// The command name and utime + stime of a `stat` line. The name is in parentheses and may
/// itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<(&str, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?;
    let mut fields = text.get(close + 1..)?.split_whitespace();
    // After the name: state (3), ppid … ; utime is field 14 and stime field 15 of the line.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// (Kassa's ticks, the load generator's ticks) over this process's threads.
fn split_own_threads() -> Option<(u64, u64)> {
    let pid = std::process::id().to_string();
    let (mut kassa, mut load) = (0, 0);
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let tid = entry.file_name();
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let Some((name, ticks)) = parse_stat(&text) else {
            continue;
        };
        if tid.to_str() == Some(pid.as_str()) || name.starts_with(LOAD_THREAD_NAME) {
            load += ticks;
        } else {
            kassa += ticks;
        }
    }
    Some((kassa, load))
}

/// Busy ticks of all CPUs: the first line of `/proc/stat` less idle and iowait.
fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| values.get(i))
        .sum();
    Some(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_names() {
        let line = "4242 (kassa (db) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 9 0 \
                    100 1000 200 18446744073709551615";
        assert_eq!(parse_stat(line), Some(("kassa (db) x", 175)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cores_are_ticks_over_wall_time() {
        let spent = Spent {
            kassa: 150,
            load: 50,
            machine_busy: 260,
            wall: Duration::from_secs(1),
        };
        let cores = spent.cores().expect("an interval");
        assert!((cores.kassa - 1.5).abs() < 1e-9);
        assert!((cores.load - 0.5).abs() < 1e-9);
        assert!((cores.other - 0.6).abs() < 1e-9);
        assert_eq!(Spent::default().cores(), None);
    }
}
