//! Heap allocations per iteration of every case (`cases/`), counted by a global allocator:
//! exact and the same on every run, however busy the machine, where timings are not. Run by
//! `npm run bench:rust` with the criterion benches, and alone with
//! `npm run bench:rust -- --bench allocs [filter]`; the filter is a regex on the ids, as for
//! criterion.

mod cases;

use criterion::Throughput;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The system allocator, counting allocations (a `realloc` counts as one) and bytes requested.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Criterion's flags that take a value: skipped with it, so it is not taken for a filter.
const VALUE_FLAGS: [&str; 17] = [
    "--baseline",
    "--baseline-lenient",
    "--color",
    "--confidence-level",
    "--format",
    "--load-baseline",
    "--measurement-time",
    "--noise-threshold",
    "--nresamples",
    "--output-format",
    "--plotting-backend",
    "--profile-time",
    "--sample-size",
    "--save-baseline",
    "--significance-level",
    "--warm-up-time",
    "--logfile",
];

/// The filter among the arguments cargo and the caller pass (`--bench`, criterion flags…).
fn filter() -> Option<regex::Regex> {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(arg) = args.next() {
        if VALUE_FLAGS.contains(&arg.as_str()) {
            args.next();
        } else if arg == "--list" {
            std::process::exit(0);
        } else if !arg.starts_with('-') && filter.is_none() {
            filter = Some(regex::Regex::new(&arg).unwrap_or_else(|e| panic!("filter {arg}: {e}")));
        }
    }
    filter
}

/// (allocations, bytes) of one call of `f`.
fn count(f: &dyn Fn()) -> (u64, u64) {
    let (a, b) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    f();
    (ALLOCATIONS.load(Relaxed) - a, BYTES.load(Relaxed) - b)
}

fn main() {
    cases::QUIET.store(true, Relaxed);
    let filter = filter();
    let cases: Vec<_> = cases::all()
        .into_iter()
        .filter(|c| filter.as_ref().is_none_or(|f| f.is_match(&c.id())))
        .collect();
    if cases.is_empty() {
        return;
    }
    println!("Heap allocations per iteration (counted, not timed):\n");
    println!(
        "{:<56} {:>9} {:>11} {:>14}",
        "id", "allocs", "KiB", "allocs/unit"
    );
    for case in &cases {
        // Once to warm lazily built state (ids, caches), then the counted iteration.
        (case.run)();
        let (allocations, bytes) = count(&case.run);
        let per_unit = match case.throughput {
            Throughput::Elements(n) => format!("{:.1}/elem", allocations as f64 / n as f64),
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                format!("{:.1}/KiB", allocations as f64 * 1024.0 / n as f64)
            }
            _ => String::new(),
        };
        println!(
            "{:<56} {:>9} {:>11.1} {:>14}",
            case.id(),
            allocations,
            bytes as f64 / 1024.0,
            per_unit
        );
    }
    println!();
}
