//! The search: Wing & Gong's algorithm with Lowe's just-in-time linearization
//! and memoization ("Testing for linearizability", Lowe 2017), as in Knossos'
//! `wgl` and Porcupine.
//!
//! The history is a doubly linked list of call and return entries in time order
//! (calls before returns at equal times, so touching operations count as
//! concurrent). The search walks the list from its head: at a call entry it
//! tries to linearize the operation next (apply it to the model); if that works
//! and the pair (set of linearized operations, model state) has not been seen
//! before, it *lifts* the operation's call and return entries out of the list,
//! pushes a frame, and starts over at the head. Reaching a return entry means
//! that operation should have been linearized already: backtrack (pop a frame,
//! unlift its entries, continue after its call). The history is linearizable
//! once every `ok` operation is linearized.
//!
//! Operations whose outcome is unknown (`info`) have a call entry and no return
//! entry: they may be linearized anywhere after their call, or never.
//!
//! What cuts the search (each exact: the verdict never changes):
//! - reads first: a legal operation that never changes the state (a read, a
//!   refused cas) can always be linearized at once, since any order that places
//!   it later can move it here. So each configuration first tries its legal
//!   reads, and when one fails (or was memoized) the whole configuration fails:
//!   no write is tried before it;
//! - operations with unknown outcome are reduced before the search (see
//!   `model::reduce_info`): one whose value nobody saw is dropped, one that is
//!   the only possible source of a value seen becomes a must-happen operation;
//! - for lists (append-only), the k-th append must append the k-th element of
//!   the longest list read (see `model::Model::pin_order`).
//!
//! What makes each step fast:
//! - the linearized set is a bitset whose hash is kept incrementally (Zobrist
//!   hashing: one XOR per step instead of hashing every word);
//! - the memo stores a compact, canonical form of the set: with `ok` operations
//!   numbered by call time, every operation before the first one not yet
//!   linearized is linearized, and every linearized one after it was called
//!   before that one returned; so the set is (first unlinearized word, the
//!   few words of the window after it, the words of info operations);
//! - the model state is a `u32` (see `model`), the list is arrays of `u32`
//!   links, the memo is a flat open-addressing table, and nothing is
//!   allocated or cloned in the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::model::{reduce_info, Compiled, Kind, ModelKind, SOp, NONE};

/// How a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Linearizable,
    NotLinearizable,
    /// The deadline passed.
    Timeout,
    /// A cancellation flag was raised.
    Cancelled,
    /// `Control::max_steps` were taken (the caller may search again with more).
    Paused,
}

/// When to give up.
pub(crate) struct Control<'a> {
    pub deadline: Instant,
    pub cancel: &'a [&'a AtomicBool],
    /// Stop with `Paused` after about this many steps.
    pub max_steps: u64,
}

impl Control<'_> {
    #[inline]
    pub fn interrupted(&self) -> Option<Outcome> {
        if self.cancel.iter().any(|c| c.load(Ordering::Relaxed)) {
            return Some(Outcome::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Some(Outcome::Timeout);
        }
        None
    }
}

#[inline]
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[inline(always)]
fn mix_state(s: u32) -> u64 {
    (u64::from(s) + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29)
}

/// The linearized set. Bits `0..n_ok` are the ok operations by call time; info
/// operations follow from word `ok_words` on.
struct Bits {
    w: Vec<u64>,
    ok_words: usize,
    /// Mask of the real bits of the last ok word.
    last_mask: u64,
    /// A lower bound of the first ok word that is not full.
    lo_hint: usize,
    /// An upper bound (exclusive) of the last nonzero ok word.
    hi_hint: usize,
    /// An upper bound (exclusive, relative) of the last nonzero info word.
    info_hi_hint: usize,
    info_set: u32,
}

impl Bits {
    fn new(n_ok: usize, n_info: usize) -> Bits {
        let ok_words = n_ok.div_ceil(64);
        let info_words = n_info.div_ceil(64);
        let rem = n_ok % 64;
        Bits { w: vec![0; ok_words + info_words], ok_words, last_mask: if rem == 0 { !0 } else { (1u64 << rem) - 1 }, lo_hint: 0, hi_hint: 0, info_hi_hint: 0, info_set: 0 }
    }

    #[inline(always)]
    fn set(&mut self, bit: usize) {
        let word = bit >> 6;
        self.w[word] |= 1u64 << (bit & 63);
        if word < self.ok_words {
            if word + 1 > self.hi_hint {
                self.hi_hint = word + 1;
            }
        } else {
            self.info_set += 1;
            let rel = word - self.ok_words + 1;
            if rel > self.info_hi_hint {
                self.info_hi_hint = rel;
            }
        }
    }

    #[inline(always)]
    fn clear(&mut self, bit: usize) {
        let word = bit >> 6;
        self.w[word] &= !(1u64 << (bit & 63));
        if word < self.ok_words {
            if word < self.lo_hint {
                self.lo_hint = word;
            }
        } else {
            self.info_set -= 1;
        }
    }

    #[inline(always)]
    fn full(&self, i: usize) -> bool {
        self.w[i] == if i + 1 == self.ok_words { self.last_mask } else { !0 }
    }

    /// (first non-full ok word, end of the window, end of the info words).
    #[inline]
    fn bounds(&mut self) -> (usize, usize, usize) {
        let mut lo = self.lo_hint;
        while lo < self.ok_words && self.full(lo) {
            lo += 1;
        }
        self.lo_hint = lo;
        let mut hi = self.hi_hint;
        while hi > lo && self.w[hi - 1] == 0 {
            hi -= 1;
        }
        self.hi_hint = hi.max(lo);
        let mut ih = 0;
        if self.info_set > 0 {
            ih = self.info_hi_hint;
            while ih > 0 && self.w[self.ok_words + ih - 1] == 0 {
                ih -= 1;
            }
        }
        self.info_hi_hint = ih;
        (lo, hi.max(lo), ih)
    }
}

#[derive(Clone, Copy)]
struct CacheEntry {
    data: usize,
    lo: u32,
    win: u32,
    info: u32,
    state: u32,
    next: u32,
}

/// The memo of (linearized set, state) pairs seen: a flat open-addressing table
/// of (64-bit key, entry) slots with linear probing (one cache line per lookup),
/// and the entries' compact encodings for exact comparison.
struct Cache {
    /// (key | 1, index of the first entry with that key); key 0 is an empty slot.
    slots: Vec<(u64, u32)>,
    mask: usize,
    len: usize,
    entries: Vec<CacheEntry>,
    data: Vec<u64>,
}

impl Cache {
    fn with_capacity(n: usize) -> Cache {
        let cap = (2 * n).next_power_of_two().max(1024);
        Cache { slots: vec![(0, NONE); cap], mask: cap - 1, len: 0, entries: Vec::with_capacity(n), data: Vec::with_capacity(n * 2) }
    }

    #[inline(always)]
    fn slot_of(&self, key: u64) -> usize {
        // The key is a uniform hash; its high bits pick the slot.
        (key >> 20) as usize & self.mask
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![(0, NONE); cap]);
        self.mask = cap - 1;
        for (k, v) in old {
            if k != 0 {
                let mut i = self.slot_of(k);
                while self.slots[i].0 != 0 {
                    i = (i + 1) & self.mask;
                }
                self.slots[i] = (k, v);
            }
        }
    }

    /// Inserts (bits, state) unless present; true if it was new.
    #[inline]
    fn insert(&mut self, key: u64, state: u32, bits: &mut Bits) -> bool {
        let key = key | 1;
        let (lo, hi, ih) = bits.bounds();
        let win = &bits.w[lo..hi];
        let info = &bits.w[bits.ok_words..bits.ok_words + ih];
        let new_index = self.entries.len() as u32;
        let mut i = self.slot_of(key);
        let next = loop {
            let (k, head) = self.slots[i];
            if k == 0 {
                self.slots[i] = (key, new_index);
                self.len += 1;
                break NONE;
            }
            if k == key {
                let mut e = head;
                while e != NONE {
                    let ce = self.entries[e as usize];
                    if ce.state == state
                        && ce.lo as usize == lo
                        && ce.win as usize == win.len()
                        && ce.info as usize == info.len()
                        && self.data[ce.data..ce.data + win.len()] == *win
                        && self.data[ce.data + win.len()..ce.data + win.len() + info.len()] == *info
                    {
                        return false;
                    }
                    e = ce.next;
                }
                self.slots[i].1 = new_index;
                break head;
            }
            i = (i + 1) & self.mask;
        };
        let data = self.data.len();
        self.data.extend_from_slice(win);
        self.data.extend_from_slice(info);
        self.entries.push(CacheEntry { data, lo: lo as u32, win: win.len() as u32, info: info.len() as u32, state, next });
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
        true
    }
}

const RET: u32 = 1 << 31;

#[derive(Clone, Copy)]
struct Frame {
    node: u32,
    state: u32,
    hash: u64,
}

/// Statistics of one search, for benchmarks and reports.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub steps: u64,
    pub states: u64,
    /// For a history that is not linearizable: the completion time and the op
    /// (index in `Compiled::ops`) of the first operation that cannot be placed.
    /// The search explores every reachable configuration (up to the exact
    /// reductions above), and the latest return
    /// entry any of them was blocked at is that op's: the history up to just
    /// before it is linearizable (a configuration passed it), the history up to
    /// it is not.
    pub blocked: Option<(u64, u32)>,
}

/// Checks the operations `ops` (a subset of `comp.ops`, possibly with some made
/// `info`) against a fresh copy of the key's model (initial state 0).
pub(crate) fn search(ops: &[SOp], comp: &Compiled, ctl: &Control) -> Outcome {
    search_stats(ops, comp, ctl).0
}

pub(crate) fn search_stats(ops: &[SOp], comp: &Compiled, ctl: &Control) -> (Outcome, Stats) {
    let reduced = reduce_info(ops, comp);
    let ops = reduced.as_deref().unwrap_or(ops);
    let mut model = comp.model.clone();
    let mut pinned = false;
    if model.kind == ModelKind::ListAppend && !ops.iter().any(|o| o.cop.kind == Kind::Write) {
        let longest = ops.iter().filter(|o| !o.info && o.cop.kind == Kind::Read).map(|o| (model.depth(o.cop.a), o.cop.a)).max();
        if let Some((_, state)) = longest {
            model.pin_order(state);
            pinned = true;
        }
    }
    // Number the ok operations by call time, then the info ones.
    let mut ok: Vec<u32> = (0..ops.len() as u32).filter(|&i| !ops[i as usize].info).collect();
    let mut info: Vec<u32> = (0..ops.len() as u32).filter(|&i| ops[i as usize].info).collect();
    if ok.is_empty() {
        return (Outcome::Linearizable, Stats::default());
    }
    ok.sort_by_key(|&i| (ops[i as usize].call, ops[i as usize].ret, i));
    info.sort_by_key(|&i| (ops[i as usize].call, i));
    let n_ok = ok.len();
    let info_base = n_ok.div_ceil(64) * 64;
    let n_bits = info_base + info.len();
    let mut cop = vec![ops[ok[0] as usize].cop; n_bits];
    let mut ret_time = vec![u64::MAX; n_ok];
    // Operations that never change the state where they are legal.
    let is_pure = |c: &super::model::COp| match c.kind {
        Kind::Read | Kind::CasRefused => true,
        Kind::Cas => c.a == c.b,
        Kind::Write | Kind::Append => false,
    };
    let mut pure = vec![false; n_bits];
    let mut zob = vec![0u64; n_bits];
    let seed = 0x5EED_u64 ^ (n_bits as u64).wrapping_mul(0x9E37_79B9);
    // Entries: (time, 0 = call / 1 = return, bit).
    let mut entries: Vec<(u64, u32, u32)> = Vec::with_capacity(2 * n_ok + info.len());
    for (bit, &i) in ok.iter().enumerate() {
        let o = &ops[i as usize];
        cop[bit] = o.cop;
        pure[bit] = is_pure(&o.cop);
        ret_time[bit] = o.ret;
        zob[bit] = splitmix64(seed.wrapping_add(bit as u64));
        entries.push((o.call, 0, bit as u32));
        entries.push((o.ret, 1, bit as u32));
    }
    for (j, &i) in info.iter().enumerate() {
        let bit = info_base + j;
        let o = &ops[i as usize];
        cop[bit] = o.cop;
        pure[bit] = is_pure(&o.cop);
        zob[bit] = splitmix64(seed.wrapping_add(bit as u64));
        entries.push((o.call, 0, bit as u32));
    }
    entries.sort_unstable();

    // The linked list: node 0 is the head, 1..=m the entries, m+1 the tail.
    let m = entries.len();
    let tail = (m + 1) as u32;
    let mut next: Vec<u32> = (1..=m as u32 + 2).collect();
    let mut prev: Vec<u32> = (0..m as u32 + 2).map(|i| i.wrapping_sub(1)).collect();
    next[m + 1] = NONE;
    let mut tag: Vec<u32> = Vec::with_capacity(m + 2);
    tag.push(RET); // head: never read as an entry
    let mut ret_node = vec![NONE; n_bits];
    for (k, &(_, kind, bit)) in entries.iter().enumerate() {
        let node = (k + 1) as u32;
        if kind == 1 {
            tag.push(bit | RET);
            ret_node[bit as usize] = node;
        } else {
            tag.push(bit);
        }
    }
    tag.push(RET); // tail

    let mut bits = Bits::new(n_ok, info.len());
    let mut cache = Cache::with_capacity(4 * n_ok + 64);
    let mut stack: Vec<Frame> = Vec::with_capacity(n_bits);
    let mut state: u32 = 0;
    let mut hash: u64 = 0;
    let mut lin_ok = 0usize;
    let mut steps: u64 = 0;
    let mut cur = next[0];

    macro_rules! unlink {
        ($n:expr) => {{
            let n = $n as usize;
            let (p, q) = (prev[n], next[n]);
            next[p as usize] = q;
            prev[q as usize] = p;
        }};
    }
    macro_rules! relink {
        ($n:expr) => {{
            let n = $n as usize;
            let (p, q) = (prev[n], next[n]);
            next[p as usize] = n as u32;
            prev[q as usize] = n as u32;
        }};
    }

    // The latest return entry the search was ever blocked at, and its op.
    let mut frontier: (u64, u32) = (0, NONE);

    // Each configuration is scanned twice: first for reads (legal ones go first,
    // see below), then for the rest.
    let mut reads_first = true;

    let outcome = 'search: loop {
        steps += 1;
        if steps & 1023 == 0 {
            if let Some(o) = ctl.interrupted() {
                break o;
            }
            if steps >= ctl.max_steps {
                break Outcome::Paused;
            }
        }
        debug_assert!(cur != tail && cur != NONE);
        let t = tag[cur as usize];
        if t & RET == 0 {
            let bit = t as usize;
            if pure[bit] != reads_first {
                // Not this pass's kind (reads in the second pass were illegal in the first).
                cur = next[cur as usize];
                continue;
            }
            if let Some(ns) = model.step(state, cop[bit]) {
                let nh = hash ^ zob[bit];
                bits.set(bit);
                if cache.insert(nh ^ mix_state(ns), ns, &mut bits) {
                    stack.push(Frame { node: cur, state, hash });
                    state = ns;
                    hash = nh;
                    unlink!(cur);
                    let r = ret_node[bit];
                    if r != NONE {
                        unlink!(r);
                    }
                    if bit < n_ok {
                        lin_ok += 1;
                        if lin_ok == n_ok {
                            break Outcome::Linearizable;
                        }
                    }
                    cur = next[0];
                    reads_first = true;
                    continue;
                }
                bits.clear(bit);
                if !pure[bit] {
                    cur = next[cur as usize];
                    continue;
                }
                // A legal operation that never changes the state (a read) can
                // always go first: any order that places it later can move it
                // here. That order was tried (it is memoized), so nothing works
                // from this configuration: backtrack.
            } else {
                cur = next[cur as usize];
                continue;
            }
        } else if reads_first {
            // The end of the callable entries: no read can go now; try the rest.
            reads_first = false;
            cur = next[0];
            continue;
        } else {
            let time = ret_time[(t & !RET) as usize];
            if time >= frontier.0 {
                frontier = (time, t & !RET);
            }
        }
        // Backtrack: undo the last step; undo one more while the undone step was
        // a read (by the argument above, its alternatives cannot succeed). The
        // configuration we return to had its reads pass already.
        reads_first = false;
        loop {
            let Some(f) = stack.pop() else {
                break 'search Outcome::NotLinearizable;
            };
            let bit = tag[f.node as usize] as usize;
            bits.clear(bit);
            if bit < n_ok {
                lin_ok -= 1;
            }
            let kept = pure[bit];
            state = f.state;
            hash = f.hash;
            let r = ret_node[bit];
            if r != NONE {
                relink!(r);
            }
            relink!(f.node);
            if !kept {
                cur = next[f.node as usize];
                break;
            }
        }
    };
    let _ = tail;
    // With the list order pinned, a search can stop early at a read that could
    // never hold (the pin came from it); the frontier is exact only unpinned.
    let blocked = (outcome == Outcome::NotLinearizable && frontier.1 != NONE && !pinned).then(|| (frontier.0, ops[ok[frontier.1 as usize] as usize].idx));
    (outcome, Stats { steps, states: cache.entries.len() as u64, blocked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;

    /// The compact encoding is canonical: the memo says "new" exactly when a
    /// plain set of (all words, state) says so, whatever order bits change in.
    #[test]
    fn memo_matches_a_plain_set() {
        let mut rng = StdRng::seed_from_u64(7);
        for (n_ok, n_info) in [(1, 0), (63, 0), (64, 1), (65, 3), (300, 0), (301, 130), (1000, 64), (999, 5)] {
            let mut bits = Bits::new(n_ok, n_info);
            let info_base = n_ok.div_ceil(64) * 64;
            let mut cache = Cache::with_capacity(16);
            let mut reference: HashSet<(Vec<u64>, u32)> = HashSet::new();
            let mut zob_hash = 0u64;
            let zob = |b: usize| splitmix64(b as u64);
            // A random walk that sets low bits more often, like the search's frontier.
            let mut set: Vec<bool> = vec![false; info_base + n_info];
            for _ in 0..20_000 {
                let bit = if n_info > 0 && rng.gen_bool(0.2) {
                    info_base + rng.gen_range(0..n_info)
                } else {
                    let frontier = set[..n_ok].iter().position(|b| !b).unwrap_or(n_ok);
                    (frontier + rng.gen_range(0..8)).min(n_ok - 1)
                };
                if set[bit] && rng.gen_bool(0.7) {
                    set[bit] = false;
                    bits.clear(bit);
                } else if !set[bit] {
                    set[bit] = true;
                    bits.set(bit);
                }
                zob_hash = set.iter().enumerate().filter(|(_, &b)| b).fold(0, |h, (i, _)| h ^ zob(i));
                let state = rng.gen_range(0..3u32);
                let new_ref = reference.insert((bits.w.clone(), state));
                // Every other size uses a deliberately weak key: many different
                // configurations share a key, which exercises the chains.
                let key = if n_ok % 2 == 0 { zob_hash ^ mix_state(state) } else { ((zob_hash & 0xF) << 60) | u64::from(state) };
                let new_cache = cache.insert(key, state, &mut bits);
                assert_eq!(new_cache, new_ref, "n_ok {n_ok} n_info {n_info}");
            }
            let _ = zob_hash;
        }
    }
}
