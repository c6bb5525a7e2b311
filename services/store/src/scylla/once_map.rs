//! Values opened once per key (the store's tenant handles), each behind a cell of its
//! own. The map's lock is held only to find or add a key's cell, never while a value is
//! opened: a slow open (network round trips, schema changes waiting for agreement) holds
//! up the callers of its own key, who share its result, and no one else.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

/// Values opened at most once per key; an open that fails is tried again by the next
/// caller.
#[derive(Debug)]
pub(crate) struct OnceMap<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<Arc<V>>>>>,
}

impl<K, V> Default for OnceMap<K, V> {
    fn default() -> Self {
        Self {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V> OnceMap<K, V> {
    /// The value of `key`, opened by `open` if no one has yet. Callers of a key whose
    /// open is under way wait for it; callers of other keys do not.
    pub(crate) async fn get_or_try_open<E, F, Fut>(&self, key: &K, open: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            // nothing panics while holding the lock, but a poisoned map is still whole
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(cells.entry(key.clone()).or_default())
        };
        cell.get_or_try_init(|| async { open().await.map(Arc::new) })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_slow_open_holds_up_no_other_key() {
        let map: Arc<OnceMap<&str, u32>> = Arc::default();
        let (started_tx, started) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        let slow = tokio::spawn({
            let map = Arc::clone(&map);
            async move {
                map.get_or_try_open(&"slow", || async move {
                    started_tx.send(()).unwrap();
                    released.await.unwrap();
                    Ok::<_, String>(1)
                })
                .await
            }
        });
        started.await.unwrap();
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            map.get_or_try_open(&"other", || async { Ok::<_, String>(2) }),
        )
        .await
        .expect("another key opens while the slow one is under way");
        assert_eq!(*other.unwrap(), 2);
        assert!(!slow.is_finished());
        release.send(()).unwrap();
        assert_eq!(*slow.await.unwrap().unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_of_one_key_share_one_open() {
        let map: Arc<OnceMap<&str, u32>> = Arc::default();
        let opens = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (map, opens) = (Arc::clone(&map), Arc::clone(&opens));
                tokio::spawn(async move {
                    map.get_or_try_open(&"t", || async move {
                        opens.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, String>(7)
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for c in callers {
            got.push(c.await.unwrap());
        }
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|v| Arc::ptr_eq(v, &got[0]) && **v == 7));
    }

    #[tokio::test]
    async fn a_failed_open_is_tried_again() {
        let map: OnceMap<&str, u32> = OnceMap::default();
        let err = map
            .get_or_try_open(&"t", || async { Err::<u32, _>("unreachable") })
            .await
            .unwrap_err();
        assert_eq!(err, "unreachable");
        let v = map
            .get_or_try_open(&"t", || async { Ok::<_, &str>(3) })
            .await
            .unwrap();
        assert_eq!(*v, 3);
        // and once open, it is not opened again
        let again = map
            .get_or_try_open(&"t", || async { Ok::<_, &str>(4) })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&v, &again));
    }
}
