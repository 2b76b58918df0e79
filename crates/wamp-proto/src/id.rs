//! WAMP ids: integers in [1, 2^53], random (global scope) or sequential (router/session scope).

/// A WAMP id.
pub type Id = u64;

/// The largest valid id, 2^53 (so ids survive a round trip through a JavaScript number).
pub const MAX_ID: Id = 1 << 53;

/// A uniformly random id in [1, 2^53], for session and publication ids (global scope).
pub fn random_id() -> Id {
    rand::random_range(1..=MAX_ID)
}

/// Sequential ids 1, 2, 3, ... wrapping back to 1 after 2^53 (router and session scope).
#[derive(Debug, Clone, Default)]
pub struct IdSequence {
    last: Id,
}

impl IdSequence {
    /// A sequence whose first id is 1.
    pub fn new() -> Self {
        Self::default()
    }
    /// The next id of the sequence.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Id {
        self.last = if self.last >= MAX_ID {
            1
        } else {
            self.last + 1
        };
        self.last
    }
}

/// Whether `id` is a valid WAMP id.
pub fn is_valid_id(id: u64) -> bool {
    (1..=MAX_ID).contains(&id)
}
