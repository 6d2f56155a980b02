//! Criterion micro-benchmarks of llm-proxy's Rust core: request building, stream adapters,
//! framing and response normalisation (the cases are in `cases/`). See `bench/rust/README.md`.
//!
//! Short default timings (1 s warm-up, 2 s measurement, 50 samples) so that the whole suite runs
//! in a few minutes on a small machine; criterion's own flags override them, e.g.
//! `npm run bench:rust -- stream -- --measurement-time 10`.
//!
//! `LLM_PROXY_BENCH_CLOCK=cpu` measures the thread's CPU time instead of wall time (see
//! `clock.rs`): steadier numbers on a machine that others are using.

mod cases;
mod clock;

use cases::Case;
use criterion::measurement::Measurement;
use criterion::Criterion;
use std::time::Duration;

fn configure<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        // Command-line flags (filter, --measurement-time, --save-baseline…) win.
        .configure_from_args()
}

/// Each run of cases with the same group becomes one criterion group.
fn run<M: Measurement>(mut c: Criterion<M>) {
    let cases = cases::all();
    for group in cases.chunk_by(|a, b| a.group == b.group) {
        let mut g = c.benchmark_group(group[0].group);
        for Case {
            name,
            throughput,
            run,
            ..
        } in group
        {
            g.throughput(throughput.clone());
            g.bench_function(name.as_str(), |b| b.iter(run));
        }
        g.finish();
    }
    c.final_summary();
}

fn main() {
    match std::env::var("LLM_PROXY_BENCH_CLOCK").as_deref() {
        Ok("cpu") => {
            let cpu = clock::ThreadCpuTime::new()
                .expect("LLM_PROXY_BENCH_CLOCK=cpu needs a per-thread CPU clock (unix)");
            eprintln!("Measuring the benchmark thread's CPU time (LLM_PROXY_BENCH_CLOCK=cpu).");
            run(configure(Criterion::default().with_measurement(cpu)));
        }
        Ok("wall") | Err(std::env::VarError::NotPresent) => run(configure(Criterion::default())),
        Ok(other) => panic!("LLM_PROXY_BENCH_CLOCK is '{other}'; use 'cpu' or 'wall'"),
        Err(e) => panic!("LLM_PROXY_BENCH_CLOCK: {e}"),
    }
}
