//! Every benchmark as data: an id, a throughput and one iteration's work. Two runners share this
//! table: `core.rs` times it with criterion, `allocs.rs` counts its heap allocations.

use std::sync::atomic::AtomicBool;

/// Set by a runner that prints its own report (`allocs.rs`): setup stays silent.
pub static QUIET: AtomicBool = AtomicBool::new(false);

/// What a case measures, printed once when it is set up (to stderr, unless [`QUIET`]).
macro_rules! note {
    ($($arg:tt)*) => {
        if !crate::cases::QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*);
        }
    };
}

pub mod conversation;
pub mod fixtures;
pub mod framing;
pub mod request;
pub mod response;
pub mod stream;

use criterion::Throughput;

/// One benchmark. Its id is `group/name`; criterion's filters and `allocs.rs` match on it.
pub struct Case {
    pub group: &'static str,
    pub name: String,
    /// What one iteration processes: messages, events or bytes.
    pub throughput: Throughput,
    /// One iteration. Inputs are prepared when the case is made; results are dropped inside.
    pub run: Box<dyn Fn()>,
}

impl Case {
    pub fn new(
        group: &'static str,
        name: impl Into<String>,
        throughput: Throughput,
        run: impl Fn() + 'static,
    ) -> Self {
        Case {
            group,
            name: name.into(),
            throughput,
            run: Box::new(run),
        }
    }

    #[allow(dead_code)] // `allocs.rs` only: criterion builds the id itself
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

/// Every case, in report order. Setup checks each input once (a fixture that no longer adapts
/// cleanly fails here, not in the middle of a measurement) and prints what it measures.
pub fn all() -> Vec<Case> {
    let mut cases = request::cases();
    cases.extend(stream::cases());
    cases.extend(framing::cases());
    cases.extend(response::cases());
    cases
}
