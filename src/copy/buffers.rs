//! Buffers used again: the ranges' and the parts'. A copy goes through thousands of 3 MiB
//! ranges and 5 MiB parts, and allocating each afresh costs more CPU than the copy itself: a
//! large allocation is an mmap of its own (see `bound_the_heap`), whose every page the kernel
//! faults in and zeroes when first written, and unmaps when freed (a quarter of the copier's
//! CPU on loopback, measured with perf). A pool keeps the freed buffers for the next: as many
//! exist as were ever in use at once (the same bound on memory as before), each mapped once.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Free buffers of at least `capacity` bytes.
pub struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
}

impl Pool {
    pub fn new(capacity: usize) -> Arc<Pool> {
        Arc::new(Pool {
            free: Mutex::new(Vec::new()),
            capacity,
        })
    }

    /// An empty buffer of at least the pool's capacity: a freed one when there is one.
    pub fn take(self: &Arc<Self>) -> Buffer {
        let reused = self.free.lock().expect("the pool's lock").pop();
        Buffer {
            bytes: reused.unwrap_or_else(|| Vec::with_capacity(self.capacity)),
            pool: self.clone(),
        }
    }

    /// How many free buffers the pool holds.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

/// A buffer from a [`Pool`], given back to it when dropped (also as the owner of the
/// [`Bytes`] an upload holds: back once the part is sent).
pub struct Buffer {
    bytes: Vec<u8>,
    pool: Arc<Pool>,
}

impl Buffer {
    /// The buffer as `Bytes`, without a copy; it returns to the pool when the last clone is
    /// dropped.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        // One that grew past the pool's size, or shrank, is not kept (it would not be reused
        // as sized).
        if bytes.capacity() >= self.pool.capacity {
            bytes.clear();
            if let Ok(mut free) = self.pool.free.lock() {
                free.push(bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_buffer_is_the_next_one_taken_and_empty() {
        let pool = Pool::new(1 << 20);
        let mut first = pool.take();
        first.extend_from_slice(b"range");
        let address = first.as_ptr();
        drop(first);
        assert_eq!(pool.free(), 1);
        let again = pool.take();
        assert_eq!((again.as_ptr(), again.len()), (address, 0));
        assert!(again.capacity() >= 1 << 20);
        assert_eq!(pool.free(), 0);
    }

    #[test]
    fn bytes_give_their_buffer_back_when_the_last_clone_goes() {
        let pool = Pool::new(64);
        let mut buffer = pool.take();
        buffer.extend_from_slice(&[7; 64]);
        let bytes = buffer.into_bytes();
        let clone = bytes.clone();
        assert_eq!(&clone[..], &[7; 64][..]);
        drop(bytes);
        assert_eq!(pool.free(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn as_many_buffers_exist_as_were_in_use_at_once() {
        let pool = Pool::new(16);
        for _ in 0..100 {
            let held: Vec<Buffer> = (0..3).map(|_| pool.take()).collect();
            drop(held);
        }
        assert_eq!(pool.free(), 3);
    }
}
