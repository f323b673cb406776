//! The handles of tasks whose id is the engine's `t_<n>` ([`crate::ids::task_id`]), by `n`:
//! [`NumberedHandles`].
//!
//! A command names its task by id string. Found through a hash index, that was a hash of the
//! string, a probe of the index's control bytes and of its bucket, and a `memcmp` against the
//! stored id behind another pointer — ~19 % of a `place_bid` at 100,000 tasks, mostly waiting
//! on memory (docs/benchmarks.md, "`place_bid` today"). The engine numbers the tasks it names in
//! order, so their handles sit in pages of [`PAGE`] slots indexed by the number: reading the
//! number off the id and one slot replace all of that, and a slot found needs no compare (only
//! the exact spelling `t_<n>` is filed under `n`).
//!
//! A page is freed when its last task leaves (is archived), so memory follows the numbers of
//! tasks in memory, not every number ever handed out: a task kept for months pins one 16 KiB
//! page, not the slots of every task posted since. A client may choose an id of this shape
//! (contract §5), so a number is filed here only where that keeps the pages dense:
//! [`NumberedHandles::takes`] refuses a number far beyond the pages in use, and one that would
//! need a new page while the pages in use are less than a quarter full (ids chosen a page
//! apart would otherwise cost 16 KiB each); the caller keeps those in its hash index. The
//! engine's own numbers come in order and fill their pages, so they always fit.

/// log2 of the slots of a page.
const PAGE_BITS: u32 = 12;
/// Slots per page: 16 KiB of handles.
const PAGE: usize = 1 << PAGE_BITS;
/// How many pages past the last one in use a number may be and still be filed: at most this
/// many empty page pointers, 8 bytes each, for one far number.
const REACH_PAGES: u64 = 256;
/// An empty slot.
const EMPTY: u32 = u32::MAX;

/// One page of slots and how many are taken.
#[derive(Clone)]
struct Page {
    taken: u32,
    slots: Box<[u32; PAGE]>,
}

/// Task number → task handle (as a `u32`), for numbers up to a little past the highest filed.
#[derive(Clone, Default)]
pub struct NumberedHandles {
    pages: Vec<Option<Page>>,
    /// Pages allocated (the `Some`s of `pages`).
    pages_in_use: usize,
    len: usize,
}

impl NumberedHandles {
    /// Whether number `n` is filed here (else the caller's hash index holds it). Depends only
    /// on the pages in use, so ask before [`NumberedHandles::insert`].
    pub fn takes(&self, n: u64) -> bool {
        let p = n >> PAGE_BITS;
        if p >= self.pages.len() as u64 + REACH_PAGES {
            return false;
        }
        if self.pages.get(p as usize).is_some_and(Option::is_some) {
            return true;
        }
        // A new page, only while the pages stay at least a quarter full (two pages of slack).
        (self.pages_in_use + 1) * PAGE <= 4 * (self.len + 1) + 2 * PAGE
    }

    /// The handle filed under `n`.
    pub fn get(&self, n: u64) -> Option<u32> {
        let page = self
            .pages
            .get(usize::try_from(n >> PAGE_BITS).ok()?)?
            .as_ref()?;
        let handle = page.slots[(n as usize) & (PAGE - 1)];
        (handle != EMPTY).then_some(handle)
    }

    /// Files `handle` under `n` (which [`NumberedHandles::takes`]); returns the handle it
    /// replaces.
    pub fn insert(&mut self, n: u64, handle: u32) -> Option<u32> {
        debug_assert!(self.takes(n) && handle != EMPTY);
        let p = (n >> PAGE_BITS) as usize;
        if p >= self.pages.len() {
            self.pages.resize_with(p + 1, || None);
        }
        if self.pages[p].is_none() {
            self.pages_in_use += 1;
        }
        let page = self.pages[p].get_or_insert_with(|| Page {
            taken: 0,
            slots: Box::new([EMPTY; PAGE]),
        });
        let old = std::mem::replace(&mut page.slots[(n as usize) & (PAGE - 1)], handle);
        if old == EMPTY {
            page.taken += 1;
            self.len += 1;
            return None;
        }
        Some(old)
    }

    /// Takes the handle filed under `n` out, freeing its page when it was the page's last.
    pub fn remove(&mut self, n: u64) -> Option<u32> {
        let p = usize::try_from(n >> PAGE_BITS).ok()?;
        let page = self.pages.get_mut(p)?.as_mut()?;
        let old = std::mem::replace(&mut page.slots[(n as usize) & (PAGE - 1)], EMPTY);
        if old == EMPTY {
            return None;
        }
        page.taken -= 1;
        self.len -= 1;
        if page.taken == 0 {
            self.pages[p] = None;
            self.pages_in_use -= 1;
            while let Some(None) = self.pages.last() {
                self.pages.pop();
            }
        }
        Some(old)
    }

    /// How many numbers are filed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// How many numbers are filed in how many pages (not the 4,096 slots of each).
impl std::fmt::Debug for NumberedHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumberedHandles")
            .field("len", &self.len)
            .field("pages", &self.pages.iter().flatten().count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Against a map model: numbers across many pages, pages freed when emptied, far numbers
    /// refused.
    #[test]
    fn behaves_as_a_map_and_frees_empty_pages() {
        let mut numbered = NumberedHandles::default();
        let mut model: BTreeMap<u64, u32> = BTreeMap::new();
        let mut x: u64 = 11;
        for round in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = x % (6 * PAGE as u64);
            if x.is_multiple_of(3) {
                assert_eq!(numbered.remove(n), model.remove(&n));
            } else if numbered.takes(n) {
                assert_eq!(numbered.insert(n, round), model.insert(n, round));
            }
            assert_eq!(numbered.get(n), model.get(&n).copied());
            assert_eq!(numbered.len(), model.len());
        }
        for n in 0..6 * PAGE as u64 {
            assert_eq!(numbered.get(n), model.get(&n).copied());
        }
        assert_eq!(numbered.pages_in_use, 6, "the model spans six pages");
        let keep = *model.keys().next_back().unwrap();
        for n in model
            .keys()
            .copied()
            .filter(|n| *n != keep)
            .collect::<Vec<_>>()
        {
            numbered.remove(n);
        }
        let pages_in_use = numbered.pages.iter().filter(|p| p.is_some()).count();
        assert_eq!(pages_in_use, 1, "only the last task's page is kept");
        numbered.remove(keep);
        assert!(numbered.pages.is_empty() && numbered.is_empty());
        assert_eq!(numbered.pages_in_use, 0);
        assert_eq!(numbered.get(u64::MAX), None);
        let reach = REACH_PAGES << PAGE_BITS;
        assert!(numbered.takes(reach - 1) && !numbered.takes(reach));
        assert!(!numbered.takes(u64::MAX));
    }

    /// Numbers a page apart (a client choosing its ids so) are refused once the pages would
    /// be less than a quarter full; numbers in order fill their pages and are always taken.
    #[test]
    fn sparse_numbers_do_not_make_a_page_each() {
        let mut numbered = NumberedHandles::default();
        let mut filed = 0;
        for k in 0..200u64 {
            let n = k * PAGE as u64;
            if numbered.takes(n) {
                numbered.insert(n, k as u32);
                filed += 1;
            }
        }
        assert!(filed <= 3, "{filed} pages for {filed} tasks");
        assert_eq!(numbered.pages_in_use, filed);
        let mut dense = NumberedHandles::default();
        for n in 0..10 * PAGE as u64 {
            assert!(dense.takes(n), "{n} in order");
            dense.insert(n, n as u32);
        }
        assert_eq!(dense.pages_in_use, 10);
    }
}
