//! A fixed set of reusable objects (ONNX Runtime sessions) handed out one caller at a time.
//!
//! `Session::run` takes `&mut self`, so each concurrent inference needs a session of its own.
//! [`Pool::checkout`] blocks until one is idle and returns a guard; the guard puts the
//! object back when it is dropped, on every path out of the caller, a panic included, so a
//! failing inference can never shrink the pool. The gateway admits at most as many callers
//! as there are objects (an async semaphore whose permit is held for the whole inference),
//! so the blocking wait here is a safety net, not the normal path.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, PoisonError};

/// The idle objects and the condition callers wait on.
#[derive(Debug)]
pub(crate) struct Pool<T> {
    idle: Mutex<Vec<T>>,
    returned: Condvar,
    size: usize,
}

impl<T> Pool<T> {
    /// A pool of these objects.
    pub(crate) fn new(items: Vec<T>) -> Self {
        let size = items.len();
        Self { idle: Mutex::new(items), returned: Condvar::new(), size }
    }

    /// How many objects it holds in all.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// How many are idle now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Waits for an idle object.
    pub(crate) fn checkout(&self) -> Pooled<'_, T> {
        // A poisoned lock only means another thread panicked while holding it; the vector of
        // idle objects is still consistent, so recover it rather than propagate the panic.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(item) = idle.pop() {
                return Pooled { pool: self, item: Some(item) };
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// One checked-out object; back in the pool when dropped.
#[derive(Debug)]
pub(crate) struct Pooled<'a, T> {
    pool: &'a Pool<T>,
    /// Always `Some` until `drop` takes it.
    item: Option<T>,
}

impl<T> Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // `item` is only taken in `drop`, after which the guard is gone.
        #[allow(clippy::unwrap_used)]
        self.item.as_ref().unwrap()
    }
}

impl<T> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        #[allow(clippy::unwrap_used)]
        self.item.as_mut().unwrap()
    }
}

impl<T> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(item);
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_panic_while_checked_out_returns_the_object() {
        let pool = Arc::new(Pool::new(vec![1, 2]));
        let worker = pool.clone();
        let result = std::thread::spawn(move || {
            let mut item = worker.checkout();
            *item += 10;
            panic!("the inference failed half-way");
        })
        .join();
        assert!(result.is_err(), "the thread panicked");
        assert_eq!(pool.idle(), 2, "the pool is whole again");
        let (a, b) = (pool.checkout(), pool.checkout());
        let mut values = [*a, *b];
        values.sort();
        assert!(values == [1, 12] || values == [2, 11], "{values:?}");
        assert_eq!(pool.size(), 2);
    }

    #[test]
    fn a_waiting_caller_gets_the_returned_object() {
        let pool = Arc::new(Pool::new(vec!["only"]));
        let held = pool.checkout();
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || *pool.checkout())
        };
        drop(held);
        assert_eq!(waiter.join().unwrap(), "only");
    }
}
