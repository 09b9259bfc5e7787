//! Locks that outlive a panic: a thread that panicked while holding one of the host's small
//! mutexes (a queue sender, a counter map) must not take the whole bot down with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock a mutex, poisoned or not. Only for values that stay consistent even if a holder
/// panicked: each change to them is one push, remove, insert, swap or assignment.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
