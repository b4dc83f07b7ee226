//! The bounded queue between the HTTP handlers and the inference workers: a handler submits a
//! [`Job`] (refused with 503 when the queue is full), and a worker takes the oldest job together
//! with every waiting job that uses the same search settings, up to a batch size.
//!
//! ```text
//! handler ──submit──► JobQueue (≤ capacity jobs; full → 503) ──next_batch──► worker k
//! ```

use super::api::{ApiError, Translation};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// What a worker answers for one job: a translation per text, in order, or an error.
pub type Reply = Result<Vec<Translation>, ApiError>;

/// One request waiting for a worker.
pub struct Job {
    pub texts: Vec<String>,
    pub beam: usize,
    pub alpha: f32,
    /// Also return every layer's and head's cross-attention (Transformers).
    pub layers: bool,
    /// Explain each text step by step (`POST /explain`) instead of translating it.
    pub explain: bool,
    pub reply: oneshot::Sender<Reply>,
}

impl Job {
    /// Whether two jobs can be decoded in one batch (same search settings).
    fn compatible(&self, other: &Job) -> bool {
        self.beam == other.beam
            && self.alpha.to_bits() == other.alpha.to_bits()
            && self.explain == other.explain
    }
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// `capacity` jobs are already waiting.
    Full,
    /// The server is shutting down.
    Closed,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// A bounded multi-consumer queue of jobs.
pub struct JobQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// The most jobs that may wait.
    pub capacity: usize,
}

impl JobQueue {
    pub fn new(capacity: usize) -> JobQueue {
        JobQueue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    /// The state; a panic never happens while it is held, so a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job without waiting; gives it back when the queue is full or closed.
    pub fn submit(&self, job: Job) -> Result<(), (SubmitError, Job)> {
        let mut s = self.lock();
        if s.closed {
            return Err((SubmitError::Closed, job));
        }
        if s.jobs.len() >= self.capacity {
            return Err((SubmitError::Full, job));
        }
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for work and returns the oldest job with every waiting compatible job, at most
    /// `max_sentences` texts in all (the first job always, whatever its size). `None` once the
    /// queue is closed and empty: queued jobs are still served after `close`.
    pub fn next_batch(&self, max_sentences: usize) -> Option<Vec<Job>> {
        let mut s = self.lock();
        loop {
            if let Some(first) = s.jobs.pop_front() {
                let mut total = first.texts.len();
                let mut batch = vec![first];
                let mut rest = VecDeque::with_capacity(s.jobs.len());
                for job in s.jobs.drain(..) {
                    if batch[0].compatible(&job) && total + job.texts.len() <= max_sentences {
                        total += job.texts.len();
                        batch.push(job);
                    } else {
                        rest.push_back(job);
                    }
                }
                s.jobs = rest;
                return Some(batch);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Refuses new jobs and wakes every waiting worker.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Takes every waiting job out of the queue (those that will never start).
    pub fn take_all(&self) -> Vec<Job> {
        self.lock().jobs.drain(..).collect()
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn job(n: usize, beam: usize) -> (Job, oneshot::Receiver<Reply>) {
        let (reply, rx) = oneshot::channel();
        let texts = (0..n).map(|i| i.to_string()).collect();
        (
            Job {
                texts,
                beam,
                alpha: 0.0,
                layers: false,
                explain: false,
                reply,
            },
            rx,
        )
    }

    #[test]
    fn full_queue_refuses_and_gives_the_job_back() {
        let q = JobQueue::new(2);
        let mut keep = vec![];
        for _ in 0..2 {
            let (j, rx) = job(1, 1);
            assert!(q.submit(j).is_ok());
            keep.push(rx);
        }
        let (j, _rx) = job(3, 1);
        let (why, back) = q.submit(j).err().unwrap();
        assert_eq!(why, SubmitError::Full);
        assert_eq!(back.texts.len(), 3);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn batches_merge_compatible_jobs_up_to_the_limit_in_order() {
        let q = JobQueue::new(10);
        // beams: 1 (2 texts), 4 (1), 1 (3), 1 (2), 1 (1)
        let mut rx = vec![];
        for (n, beam) in [(2, 1), (1, 4), (3, 1), (2, 1), (1, 1)] {
            let (j, r) = job(n, beam);
            q.submit(j).ok().unwrap();
            rx.push(r);
        }
        // First batch: jobs 0 (2), 2 (3) → 5; job 3 (2) would make 7 > 6; job 4 (1) fits → 6.
        let b = q.next_batch(6).unwrap();
        assert_eq!(
            b.iter()
                .map(|j| (j.texts.len(), j.beam))
                .collect::<Vec<_>>(),
            vec![(2, 1), (3, 1), (1, 1)]
        );
        // Then the beam-4 job alone (oldest), then job 3.
        let b = q.next_batch(6).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].beam, 4);
        let b = q.next_batch(6).unwrap();
        assert_eq!((b.len(), b[0].texts.len()), (1, 2));
        assert!(q.is_empty());
    }

    #[test]
    fn an_oversized_first_job_is_taken_alone() {
        let q = JobQueue::new(10);
        let (a, _ra) = job(9, 1);
        let (b, _rb) = job(1, 1);
        q.submit(a).ok().unwrap();
        q.submit(b).ok().unwrap();
        let batch = q.next_batch(4).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].texts.len(), 9);
    }

    #[test]
    fn close_drains_then_ends_and_refuses_new_jobs() {
        let q = Arc::new(JobQueue::new(4));
        let (a, _ra) = job(1, 1);
        q.submit(a).ok().unwrap();
        q.close();
        let (b, _rb) = job(1, 1);
        assert_eq!(q.submit(b).err().unwrap().0, SubmitError::Closed);
        assert_eq!(q.next_batch(8).map(|b| b.len()), Some(1));
        assert!(q.next_batch(8).is_none());
        // Closed with jobs waiting: taking them all leaves the workers nothing to start.
        let q1 = JobQueue::new(4);
        for _ in 0..3 {
            q1.submit(job(2, 1).0).ok().unwrap();
        }
        q1.close();
        assert_eq!(q1.take_all().len(), 3);
        assert!(q1.next_batch(8).is_none());
        // A worker blocked on an empty queue is woken by close.
        let q2 = Arc::new(JobQueue::new(4));
        let waiter = {
            let q2 = Arc::clone(&q2);
            std::thread::spawn(move || q2.next_batch(8).is_none())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        q2.close();
        assert!(waiter.join().unwrap());
    }
}
