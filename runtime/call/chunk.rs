//! How many items go in each chunk when the caller does not say.

/// The most bytes of encoded items a chunk takes before it is sent, so that
/// large items travel a few at a time and start work early, and so that a
/// chunk fits in half of a worker's ring of the default size (1 MiB).
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// Chunk sizes for one call.
///
/// With a known number of items, every chunk has `len / (4 × workers)` items
/// (at least one), as Python's `Pool.map` does: each worker gets about four
/// chunks, enough to even out uneven items while paying for few frames. With
/// an unknown number (a lazy iterator), sizes start at one item per worker and
/// double after each round of `workers` chunks while the call's chunks run
/// quickly, up to [`MAX_GROWN`], so that a short input still spreads over
/// every worker, a long one of quick items soon travels in large chunks, and
/// slow items stay in small ones.
#[derive(Debug, Clone)]
pub(crate) struct ChunkPlan {
    size: usize,
    growth: Option<Growth>,
    /// No chunk grows past this.
    cap: usize,
}

#[derive(Debug, Clone)]
struct Growth {
    workers: usize,
    issued: usize,
}

/// The largest chunk a growing plan reaches.
const MAX_GROWN: usize = 1 << 16;

impl ChunkPlan {
    /// A plan for `workers` workers over an input whose `size_hint` is `hint`.
    pub(crate) fn new(workers: usize, hint: (usize, Option<usize>)) -> Self {
        let workers = workers.max(1);
        match hint {
            (low, Some(high)) if low == high => ChunkPlan {
                size: high.div_ceil(4 * workers).max(1),
                growth: None,
                cap: usize::MAX,
            },
            _ => ChunkPlan {
                size: 1,
                growth: Some(Growth { workers, issued: 0 }),
                cap: MAX_GROWN,
            },
        }
    }

    /// A plan whose every chunk has `size` items.
    pub(crate) fn fixed(size: usize) -> Self {
        ChunkPlan {
            size: size.max(1),
            growth: None,
            cap: usize::MAX,
        }
    }

    /// Caps every chunk at `max` items.
    pub(crate) fn at_most(mut self, max: usize) -> Self {
        self.cap = max.max(1);
        self.size = self.size.min(self.cap);
        self
    }

    /// The size of the next chunk; a growing plan grows only while the
    /// call's chunks are `quick`.
    pub(crate) fn next_size(&mut self, quick: bool) -> usize {
        let size = self.size;
        if let Some(growth) = &mut self.growth {
            growth.issued += 1;
            if quick && growth.issued % growth.workers == 0 {
                self.size = (self.size * 2).min(self.cap);
            }
        }
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_length_gives_each_worker_about_four_chunks() {
        let mut plan = ChunkPlan::new(2, (1_000_000, Some(1_000_000)));
        assert_eq!(plan.next_size(true), 125_000);
        assert_eq!(plan.next_size(false), 125_000);
    }

    #[test]
    fn short_known_length_spreads_one_item_per_chunk() {
        let mut plan = ChunkPlan::new(5, (10, Some(10)));
        assert_eq!((0..10).map(|_| plan.next_size(true)).sum::<usize>(), 10);
    }

    #[test]
    fn unknown_length_grows_by_rounds_up_to_the_cap() {
        let mut plan = ChunkPlan::new(2, (0, None));
        let sizes: Vec<usize> = (0..6).map(|_| plan.next_size(true)).collect();
        assert_eq!(sizes, [1, 1, 2, 2, 4, 4]);
        assert_eq!(
            (0..100).map(|_| plan.next_size(true)).max(),
            Some(MAX_GROWN)
        );
    }

    #[test]
    fn slow_chunks_stop_the_growth() {
        let mut plan = ChunkPlan::new(2, (0, None));
        let sizes: Vec<usize> = (0..8).map(|i| plan.next_size(i < 4)).collect();
        assert_eq!(sizes, [1, 1, 2, 2, 4, 4, 4, 4]);
    }

    #[test]
    fn a_cap_bounds_every_plan() {
        let mut known = ChunkPlan::new(2, (1_000, Some(1_000))).at_most(7);
        assert_eq!(known.next_size(true), 7);
        let mut growing = ChunkPlan::new(2, (0, None)).at_most(3);
        assert_eq!((0..20).map(|_| growing.next_size(true)).max(), Some(3));
        assert_eq!(ChunkPlan::fixed(5).at_most(9).next_size(true), 5);
    }
}
