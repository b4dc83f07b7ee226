//! Inference workers: threads that each own a copy of the model, fed from one bounded queue, that
//! merge waiting requests into batches.
//!
//! The models are not `Send` (their parameters live on an `Rc` tape), so they never cross threads:
//! every worker loads its own copy with [`load_model`] and keeps it for its life. Requests travel
//! the other way, as [`Job`]s with a one-shot channel for the answer, so the HTTP side only waits
//! and never computes.
//!
//! ```text
//! handler ──submit──► JobQueue (≤ capacity jobs; full → 503) ──next_batch──► worker k
//!    ▲                                                                          │ encode, decode, decode
//!    └──────────────────────── oneshot: Result<Vec<Translation>, ApiError> ◄────┘
//! ```
//! Batching: a worker takes the oldest job and, with it, every waiting job that uses the same beam
//! and length penalty, up to `max_batch` sentences, and decodes them in one call of
//! [`translate_ids`] (which sorts them by length). Under load, decoding 16 short sentences together
//! costs little more than one; when the queue is empty a request is decoded on its own at once.
//!
//! Transformers: the search sees the last decoder layer's cross-attention averaged over heads.
//! A job that asks for `layers` also gets every layer's and head's cross-attention, from one
//! teacher-forced pass over the decoded tokens ([`Transformer::attention_maps`](attend::models::transformer::Transformer::attention_maps); the same weights
//! the cached decoding used).

use super::api::{ApiError, ModelInfo, Translation};
use super::queue::{Job, JobQueue, Reply, SubmitError};
use anyhow::{Context, Result};
use attend::config::Config;
use attend::data::tokenizer::{Vocabs, BOS};
use attend::models::Seq2Seq;
use attend::search::Hypothesis;
use attend::show::explain::{explain, ExplainError};
use attend::train::checkpoint::load_model;
use attend::translate::{check_sources, translate_ids};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::watch;

/// A worker's own copy of a run: config, tokenizers, network.
struct WorkerModel {
    config: Config,
    vocabs: Vocabs,
    model: Box<dyn Seq2Seq>,
}

impl WorkerModel {
    fn load(dir: &Path, checkpoint: &str) -> Result<WorkerModel> {
        let loaded = load_model(dir, checkpoint)?;
        Ok(WorkerModel {
            config: loaded.config,
            vocabs: loaded.vocabs,
            model: loaded.model,
        })
    }

    /// Every decoder layer's cross-attention, `[layers][heads][T][S]`, for the `T` rows of a
    /// hypothesis' attention (its tokens, `</s>` included when emitted); `None` for other models.
    fn layers(&self, src: &[u32], h: &Hypothesis) -> Result<Option<Layers>, ApiError> {
        let Some(t) = self.model.as_transformer() else {
            return Ok(None);
        };
        let rows = h.attention.len();
        if rows == 0 || src.is_empty() {
            return Ok(Some(vec![]));
        }
        // Decoder inputs: <s>, then every emitted token but the last row's.
        let tgt_in: Vec<u32> = std::iter::once(BOS)
            .chain(h.ids.iter().copied())
            .take(rows)
            .collect();
        let maps = t
            .attention_maps(src, &[src.len()], src.len(), &tgt_in, rows)
            .map_err(|e| ApiError::internal(format!("attention maps: {e}")))?;
        Ok(Some(
            maps.cross
                .iter()
                .map(|m| {
                    // m: [1, H, T, S]
                    let (heads, s) = (m.dim(1), m.dim(3));
                    (0..heads)
                        .map(|hd| {
                            (0..rows)
                                .map(|r| {
                                    let at = (hd * rows + r) * s;
                                    m.data()[at..at + s].to_vec()
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect(),
        ))
    }
}

/// Cross-attention of every decoder layer and head: `[layers][heads][target][source]`.
pub type Layers = Vec<Vec<Vec<Vec<f32>>>>;

/// The worker threads and their queue.
pub struct WorkerPool {
    queue: Arc<JobQueue>,
    /// Worker threads still running.
    alive: Arc<watch::Sender<usize>>,
    workers: usize,
    /// What the first worker found in the run directory.
    pub info: ModelInfo,
}

impl WorkerPool {
    /// Starts `workers` threads, each loading `dir/{checkpoint}.safetensors`, and waits until all
    /// have loaded (or one failed: then all stop and the error is returned).
    pub fn start(
        dir: &Path,
        checkpoint: &str,
        workers: usize,
        queue_capacity: usize,
        max_batch: usize,
    ) -> Result<WorkerPool> {
        let queue = Arc::new(JobQueue::new(queue_capacity));
        let alive = Arc::new(watch::Sender::new(workers));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<ModelInfo>>();
        let mut handles = Vec::with_capacity(workers);
        for k in 0..workers {
            let running = Alive(Arc::clone(&alive));
            let (jobs, ready, dir, checkpoint) = (
                Arc::clone(&queue),
                ready_tx.clone(),
                PathBuf::from(dir),
                checkpoint.to_string(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("attend-worker-{k}"))
                .spawn(move || {
                    let _running = running;
                    let loaded = match WorkerModel::load(&dir, &checkpoint) {
                        Ok(m) => m,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let params = loaded.model.params().count();
                    let info = ModelInfo::describe(
                        &dir,
                        &checkpoint,
                        &loaded.config,
                        &loaded.vocabs,
                        params,
                    );
                    let _ = ready.send(Ok(info));
                    drop(ready);
                    while let Some(batch) = jobs.next_batch(max_batch) {
                        run_batch(&loaded, batch);
                    }
                })
                .context("starting a worker thread");
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop(&queue, &mut handles);
                    return Err(e);
                }
            }
        }
        drop(ready_tx);
        let mut info = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(i)) => info = info.or(Some(i)),
                Ok(Err(e)) => {
                    stop(&queue, &mut handles);
                    return Err(e);
                }
                Err(_) => {
                    stop(&queue, &mut handles);
                    anyhow::bail!("a worker thread stopped while loading the model");
                }
            }
        }
        let info = info.context("--workers must be at least 1")?;
        // The threads are not joined: at a hard stop a busy one is left to finish with the process.
        drop(handles);
        Ok(WorkerPool {
            queue,
            alive,
            workers,
            info,
        })
    }

    /// Queues a job; 503 when the queue is full or the pool is shutting down.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.queue.submit(job).map_err(|(why, _)| match why {
            SubmitError::Full => ApiError::unavailable(format!(
                "all {} workers are busy and {} requests are waiting; retry shortly",
                self.workers, self.queue.capacity
            )),
            SubmitError::Closed => ApiError::unavailable("the server is shutting down"),
        })
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Refuses new jobs; the workers finish the queued ones, then return.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Answers 503 to every job still waiting (it will never start) and returns how many there were.
    pub fn abandon(&self) -> usize {
        let jobs = self.queue.take_all();
        let n = jobs.len();
        for job in jobs {
            let _ = job.reply.send(Err(ApiError::unavailable(
                "the server stopped before starting this request",
            )));
        }
        n
    }

    /// Completes once every worker thread has returned (after [`close`](Self::close), when the
    /// queue is empty and the last batch decoded).
    pub async fn finished(&self) {
        let mut alive = self.alive.subscribe();
        let _ = alive.wait_for(|&n| n == 0).await;
    }
}

impl Drop for WorkerPool {
    /// Nobody is left to wait for the queued jobs: the workers stop after their current batch.
    fn drop(&mut self) {
        self.close();
        self.abandon();
    }
}

/// Counts its worker thread as running until the thread returns (or unwinds).
struct Alive(Arc<watch::Sender<usize>>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

fn stop(queue: &JobQueue, handles: &mut Vec<JoinHandle<()>>) {
    queue.close();
    for h in handles.drain(..) {
        // A worker only ends by returning (inference panics are caught inside it).
        let _ = h.join();
    }
}

/// Encodes, decodes and answers one batch of compatible jobs. A text the tokenizer rejects, or one
/// longer than the model reads, fails only its own job (400); a panic inside the model fails the
/// batch (500) and the worker goes on.
fn run_batch(m: &WorkerModel, batch: Vec<Job>) {
    if batch[0].explain {
        for job in batch {
            let answer = catch_unwind(AssertUnwindSafe(|| {
                job.texts.iter().map(|t| explained(m, t)).collect::<Reply>()
            }))
            .unwrap_or_else(|_| {
                Err(ApiError::internal(
                    "the model failed on this text (see the server log)",
                ))
            });
            let _ = job.reply.send(answer);
        }
        return;
    }
    let (beam, alpha) = (batch[0].beam, batch[0].alpha);
    let mut jobs = Vec::with_capacity(batch.len());
    for job in batch {
        let encoded = job
            .texts
            .iter()
            .map(|t| m.vocabs.src.encode(t).map_err(|e| e.to_string()))
            .collect::<Result<Vec<Vec<u32>>, _>>()
            .and_then(|ids| match check_sources(&*m.model, &ids) {
                Ok(()) => Ok(ids),
                Err(e) => Err(e.to_string()),
            });
        match encoded {
            Ok(ids) => jobs.push((job.reply, job.layers, ids)),
            Err(e) => {
                let _ = job.reply.send(Err(ApiError::bad_request(e)));
            }
        }
    }
    let sources: Vec<Vec<u32>> = jobs.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
    if sources.is_empty() {
        return;
    }
    let answered = catch_unwind(AssertUnwindSafe(|| {
        let mut hyps = translate_ids(&*m.model, &sources, &m.config, beam, alpha).into_iter();
        jobs.iter()
            .map(|(_, layers, ids)| {
                ids.iter()
                    .zip(hyps.by_ref())
                    .map(|(src, h)| {
                        let mut t = translation(&m.vocabs, src, &h);
                        if *layers {
                            t.layers = m.layers(src, &h)?;
                        }
                        Ok(t)
                    })
                    .collect::<Reply>()
            })
            .collect::<Vec<Reply>>()
    }));
    match answered {
        Ok(replies) => {
            for ((reply, _, _), answer) in jobs.into_iter().zip(replies) {
                // The client may have gone; its answer is then dropped.
                let _ = reply.send(answer);
            }
        }
        Err(_) => {
            for (reply, _, _) in jobs {
                let _ = reply.send(Err(ApiError::internal(
                    "the model failed on this batch (see the server log)",
                )));
            }
        }
    }
}

/// `text` explained step by step as `attend explain --json` does (greedy, the same length
/// limit), as a translation carrying its explanation; a text the model cannot explain is a 400.
fn explained(m: &WorkerModel, text: &str) -> Result<Translation, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(e.to_string());
    let src = m.vocabs.src.encode(text).map_err(|e| bad(&e))?;
    check_sources(&*m.model, std::slice::from_ref(&src)).map_err(|e| bad(&e))?;
    let max_len = m.config.max_output_len(src.len());
    let ex = explain(&*m.model, &m.vocabs, text, max_len).map_err(|e| match e {
        ExplainError::Model(e) => ApiError::internal(format!("the model failed: {e}")),
        e => bad(&e),
    })?;
    Ok(Translation {
        translation: ex.translation.clone(),
        source_tokens: ex.source_tokens.clone(),
        target_tokens: ex.steps.iter().map(|s| s.emitted.clone()).collect(),
        attention: ex.steps.iter().map(|s| s.weights.clone()).collect(),
        layers: None,
        explanation: Some(Box::new(ex)),
    })
}

/// A hypothesis as the API shows it: text, tokens on both sides, and the attention rows (the row
/// of `</s>` included when the model emitted it, the column of `</s>` when the model appended it to
/// the source).
pub fn translation(vocabs: &Vocabs, src: &[u32], h: &Hypothesis) -> Translation {
    let mut target_tokens: Vec<String> = h.ids.iter().map(|&i| vocabs.tgt.token(i)).collect();
    if h.attention.len() == h.ids.len() + 1 {
        target_tokens.push(vocabs.tgt.token(attend::data::tokenizer::EOS));
    }
    let mut source_tokens: Vec<String> = src.iter().map(|&i| vocabs.src.token(i)).collect();
    // A model that appends `</s>` to the source attends to it too (imported Marian models).
    if h.attention
        .first()
        .is_some_and(|row| row.len() == src.len() + 1)
    {
        source_tokens.push(vocabs.src.token(attend::data::tokenizer::EOS));
    }
    Translation {
        translation: vocabs.tgt.decode(&h.ids),
        source_tokens,
        target_tokens,
        attention: h.attention.clone(),
        layers: None,
        explanation: None,
    }
}
