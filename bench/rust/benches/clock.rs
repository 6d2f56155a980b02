//! The benchmark thread's CPU time as a criterion measurement, for busy machines.
//!
//! Wall time counts the time the thread waits for a core, so on a shared two-core machine where
//! others are compiling the numbers swing by 2-3x between runs. The thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) leaves that out (cache pollution by the other processes still
//! shows). Chosen with `LLM_PROXY_BENCH_CLOCK=cpu`; see `main.rs`.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use std::time::Duration;

/// CPU time consumed by the calling thread.
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant every unix has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub struct ThreadCpuTime {
    /// Values are durations, so they are shown as wall time's are (ns, µs, ms; bytes/s, elem/s).
    wall: WallTime,
}

impl ThreadCpuTime {
    /// `None` where the platform has no per-thread CPU clock.
    pub fn new() -> Option<Self> {
        cfg!(unix).then_some(ThreadCpuTime { wall: WallTime })
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        #[cfg(unix)]
        return thread_cpu_time();
        #[cfg(not(unix))]
        unreachable!("ThreadCpuTime::new returns None off unix")
    }

    fn end(&self, start: Duration) -> Duration {
        self.start().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}
