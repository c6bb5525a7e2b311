//! The node-local cache of decoded inputs: least recently used first out, bounded in
//! bytes. Shared by every training set a trainer runs, so the samples a pipeline trains
//! on again (a sliding window, a reservoir, the epochs of one set) are read and decoded
//! once.

use std::sync::{Arc, Mutex};

use hashlink::LinkedHashMap;

/// What a cached input is found by: the source (tenant, dataset and input shape, hashed)
/// and the sample's key and changeset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// A hash of the tenant, the dataset and the input shape.
    pub source: u64,
    /// The sample's key.
    pub key: u64,
    /// The changeset that added it.
    pub changeset: i64,
}

/// Bytes counted for an entry beyond its values (keys, maps, the `Arc`).
const OVERHEAD: u64 = 96;

/// The entries, least recently used first: a hash map threaded by a list, so a use, an
/// insertion and an eviction each cost one hash and a few pointer writes.
#[derive(Debug, Default)]
struct Inner {
    entries: LinkedHashMap<CacheKey, Arc<[f32]>>,
    bytes: u64,
}

/// A size-bounded LRU cache of decoded inputs. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Cache {
    inner: Arc<Mutex<Inner>>,
    capacity: u64,
}

/// The bytes an input takes in the cache.
fn cost(values: &[f32]) -> u64 {
    values.len() as u64 * 4 + OVERHEAD
}

impl Cache {
    /// A cache that holds at most `capacity` bytes (0: nothing is cached).
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    /// The input, if cached (it becomes the most recently used).
    pub fn get(&self, key: &CacheKey) -> Option<Arc<[f32]>> {
        self.get_many(std::slice::from_ref(key)).pop().flatten()
    }

    /// The inputs of `keys`, in order, those cached (one lock for all).
    pub fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Arc<[f32]>>> {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.entries.is_empty() {
            return vec![None; keys.len()];
        }
        keys.iter()
            .map(|key| inner.entries.to_back(key).cloned())
            .collect()
    }

    /// Caches an input, evicting the least recently used ones to make room. An input
    /// larger than the whole cache is not cached.
    pub fn put(&self, key: CacheKey, values: Arc<[f32]>) {
        self.put_many(vec![(key, values)]);
    }

    /// Caches inputs, in order (one lock for all).
    pub fn put_many(&self, entries: Vec<(CacheKey, Arc<[f32]>)>) {
        if self.capacity == 0 || entries.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        for (key, values) in entries {
            Self::put_locked(&mut inner, self.capacity, key, values);
        }
    }

    fn put_locked(inner: &mut Inner, capacity: u64, key: CacheKey, values: Arc<[f32]>) {
        let size = cost(&values);
        if size > capacity {
            return;
        }
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= cost(&old);
        }
        while inner.bytes + size > capacity {
            let Some((_, oldest)) = inner.entries.pop_front() else {
                break;
            };
            inner.bytes -= cost(&oldest);
        }
        inner.bytes += size;
        inner.entries.insert(key, values);
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().expect("cache lock").bytes
    }

    /// Inputs held.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("cache lock").entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its bound, in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Empties it.
    pub fn clear(&self) {
        *self.inner.lock().expect("cache lock") = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: u64) -> CacheKey {
        CacheKey {
            source: 1,
            key: k,
            changeset: 1,
        }
    }

    fn values(n: usize) -> Arc<[f32]> {
        vec![0.5; n].into()
    }

    #[test]
    fn evicts_the_least_recently_used_within_its_bound() {
        let one = cost(&values(10));
        let cache = Cache::new(3 * one);
        for k in 0..3 {
            cache.put(key(k), values(10));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key(0)).is_some()); // 0 is now the most recent
        cache.put(key(3), values(10)); // evicts 1
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(0)).is_some());
        assert!(cache.get(&key(2)).is_some());
        assert!(cache.get(&key(3)).is_some());
        assert_eq!(cache.bytes(), 3 * one);

        // a big one evicts as many as it needs; one bigger than the cache is not kept
        cache.put(key(4), values(25));
        assert!(cache.bytes() <= cache.capacity());
        assert!(cache.get(&key(4)).is_some());
        cache.put(key(5), values(1000));
        assert!(cache.get(&key(5)).is_none());
        assert!(cache.bytes() <= cache.capacity());

        // replacing an entry does not count it twice
        let before = cache.bytes();
        cache.put(key(4), values(25));
        assert_eq!(cache.bytes(), before);

        let none = Cache::new(0);
        none.put(key(1), values(1));
        assert!(none.is_empty());
        cache.clear();
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn keys_differ_by_source_and_changeset() {
        let cache = Cache::new(1 << 20);
        cache.put(key(1), values(1));
        let other = CacheKey {
            source: 2,
            ..key(1)
        };
        let later = CacheKey {
            changeset: 2,
            ..key(1)
        };
        assert!(cache.get(&other).is_none());
        assert!(cache.get(&later).is_none());
        assert!(cache.get(&key(1)).is_some());
    }
}
