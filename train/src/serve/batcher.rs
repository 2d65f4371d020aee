//! Dynamic batching: requests wait in a bounded queue (a tokio `mpsc` channel); one batcher
//! task takes the first, gathers more until the batch holds `max_batch` images or `max_wait`
//! has passed since the first, runs ONE encoder call on a blocking thread (never on the async
//! workers) and answers each request through its `oneshot` channel.
//!
//! Requests are never split: a batch closes before a request that would push it past
//! `max_batch` (that request opens the next batch), and a request larger than `max_batch` on
//! its own is encoded alone. A full queue refuses a request at once ([`ServeError::QueueFull`],
//! answered 503 with `Retry-After`) rather than letting latency grow without bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ndarray::{Array2, Array4, Axis, Slice, concatenate};
use patchmix_export::runtime::Embed;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::error::ServeError;
use super::metrics::Metrics;

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most images per encoder call (at least 1).
    pub max_batch: usize,
    /// Longest wait for more requests after the first of a batch arrived.
    pub max_wait: Duration,
    /// Requests the queue holds before refusing more (at least 1).
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_wait: Duration::from_millis(5),
            queue: 256,
        }
    }
}

/// One request's images and where its features go.
struct Job {
    images: Array4<f32>,
    reply: oneshot::Sender<Result<Array2<f32>, ServeError>>,
}

/// The sending side of the batching queue; cheap to clone. The batcher stops when every
/// handle is dropped (after answering what is queued).
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the batcher task on the current tokio runtime; it owns `encoder`.
    ///
    /// # Errors
    ///
    /// [`ServeError::Startup`] for a `max_batch` or `queue` of 0 (named as the flags).
    pub fn start(
        encoder: Box<dyn Embed + Send>,
        config: BatchConfig,
        metrics: Metrics,
    ) -> Result<Self, ServeError> {
        if config.max_batch == 0 {
            return Err(ServeError::Startup("--max-batch must be at least 1".into()));
        }
        if config.queue == 0 {
            return Err(ServeError::Startup("--queue must be at least 1".into()));
        }
        let (tx, rx) = mpsc::channel(config.queue);
        tokio::spawn(run(rx, Arc::new(Mutex::new(encoder)), config, metrics));
        Ok(Self { tx })
    }

    /// Requests waiting in the queue.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Embeds `images` `[B, 3, H, W]` (preprocessed) in some batch; returns `[B, D]`.
    ///
    /// # Errors
    ///
    /// [`ServeError::QueueFull`] at once when the queue is full, [`ServeError::ShuttingDown`]
    /// when the batcher has stopped, [`ServeError::Internal`] when the encoder fails.
    pub async fn embed(&self, images: Array4<f32>) -> Result<Array2<f32>, ServeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Job { images, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ServeError::QueueFull { retry_after_s: 1 },
                mpsc::error::TrySendError::Closed(_) => ServeError::ShuttingDown,
            })?;
        answer.await.map_err(|_| ServeError::ShuttingDown)?
    }
}

/// The batcher loop: until the queue is closed and empty.
async fn run(
    mut rx: mpsc::Receiver<Job>,
    encoder: Arc<Mutex<Box<dyn Embed + Send>>>,
    config: BatchConfig,
    metrics: Metrics,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let deadline = Instant::now() + config.max_wait;
        let mut images = first.images.shape()[0];
        let mut jobs = vec![first];
        while images < config.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) if images + job.images.shape()[0] > config.max_batch => {
                    next = Some(job);
                    break;
                }
                Ok(Some(job)) => {
                    images += job.images.shape()[0];
                    jobs.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        // Requests whose client has gone (timed out, disconnected) are not encoded.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        encode(jobs, &encoder, &metrics).await;
    }
}

/// Runs one encoder call over `jobs` on a blocking thread and answers each.
async fn encode(jobs: Vec<Job>, encoder: &Arc<Mutex<Box<dyn Embed + Send>>>, metrics: &Metrics) {
    let (inputs, replies): (Vec<Array4<f32>>, Vec<_>) =
        jobs.into_iter().map(|j| (j.images, j.reply)).unzip();
    let sizes: Vec<usize> = inputs.iter().map(|a| a.shape()[0]).collect();
    let total: usize = sizes.iter().sum();
    metrics.batch_size.observe(total as f64);
    let encoder = Arc::clone(encoder);
    let result = tokio::task::spawn_blocking(move || -> Result<Array2<f32>, ServeError> {
        let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
        let batch = concatenate(Axis(0), &views)
            .map_err(|e| ServeError::Internal(format!("cannot batch the requests: {e}")))?;
        let mut encoder = encoder
            .lock()
            .map_err(|_| ServeError::Internal("the encoder panicked earlier".into()))?;
        let features = encoder
            .embed(batch.view())
            .map_err(|e| ServeError::Internal(format!("the encoder failed: {e}")))?;
        if features.nrows() != total {
            return Err(ServeError::Internal(format!(
                "the encoder returned {} rows for {total} images",
                features.nrows()
            )));
        }
        Ok(features)
    })
    .await
    .map_err(|e| ServeError::Internal(format!("the encoder thread failed: {e}")))
    .and_then(|r| r);
    match result {
        Ok(features) => {
            let mut start = 0;
            for (reply, n) in replies.into_iter().zip(sizes) {
                // A client that went away meanwhile drops its receiver; nothing to do.
                let _ = reply.send(Ok(features
                    .slice_axis(Axis(0), Slice::from(start..start + n))
                    .to_owned()));
                start += n;
            }
        }
        Err(e) => {
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(ServeError::Internal(message.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchmix_export::runtime::RuntimeError;
    use std::sync::mpsc as std_mpsc;

    /// An encoder whose every call waits for a token, then returns row `i` = [first pixel of
    /// image i, batch size].
    struct Gated {
        gate: std_mpsc::Receiver<()>,
    }

    impl Embed for Gated {
        fn embed(
            &mut self,
            images: ndarray::ArrayView4<'_, f32>,
        ) -> Result<Array2<f32>, RuntimeError> {
            self.gate.recv().map_err(|_| RuntimeError::Backend {
                runtime: "test",
                message: "gate closed".into(),
            })?;
            let b = images.shape()[0];
            Ok(Array2::from_shape_fn((b, 2), |(i, j)| {
                if j == 0 {
                    images[[i, 0, 0, 0]]
                } else {
                    b as f32
                }
            }))
        }
        fn image_size(&self) -> usize {
            1
        }
    }

    fn image(v: f32, n: usize) -> Array4<f32> {
        Array4::from_elem((n, 3, 1, 1), v)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_the_rest_are_answered() {
        let (open, gate) = std_mpsc::channel();
        let metrics = Metrics::new().unwrap();
        let config = BatchConfig {
            max_batch: 1,
            max_wait: Duration::ZERO,
            queue: 1,
        };
        let b = Batcher::start(Box::new(Gated { gate }), config, metrics.clone()).unwrap();
        // The first request is taken by the batcher, which blocks in the encoder...
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.embed(image(1.0, 1)).await }
        });
        while b.depth() != 0 || metrics.batch_size.get_sample_count() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // ...the second fills the queue of one...
        let second = tokio::spawn({
            let b = b.clone();
            async move { b.embed(image(2.0, 1)).await }
        });
        while b.depth() != 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // ...and the third is refused without waiting.
        let third = b.embed(image(3.0, 1)).await;
        assert!(
            matches!(third, Err(ServeError::QueueFull { .. })),
            "{third:?}"
        );
        open.send(()).unwrap();
        open.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap()[[0, 0]], 1.0);
        assert_eq!(second.await.unwrap().unwrap()[[0, 0]], 2.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_requests_share_one_call_without_splitting_a_request() {
        let (open, gate) = std_mpsc::channel();
        let metrics = Metrics::new().unwrap();
        let config = BatchConfig {
            max_batch: 4,
            max_wait: Duration::from_millis(200),
            queue: 8,
        };
        // Tokens for every call up front: the calls run as soon as a batch closes.
        for _ in 0..8 {
            open.send(()).unwrap();
        }
        let b = Batcher::start(Box::new(Gated { gate }), config, metrics.clone()).unwrap();
        // `join!` polls in order: the four requests are queued in this order at once.
        let (r0, r1, r2, r3) = tokio::join!(
            b.embed(image(0.0, 1)),
            b.embed(image(1.0, 2)),
            b.embed(image(2.0, 1)),
            b.embed(image(3.0, 3)),
        );
        let out = [r0.unwrap(), r1.unwrap(), r2.unwrap(), r3.unwrap()];
        for (i, (f, n)) in out.iter().zip([1usize, 2, 1, 3]).enumerate() {
            assert_eq!(f.nrows(), n);
            assert!(
                f.column(0).iter().all(|&v| v == i as f32),
                "request {i}: {f:?}"
            );
        }
        // 1 + 2 + 1 images fill the first call; the request of 3 is not split: it waits for
        // the next call, which runs after max_wait alone.
        assert_eq!(metrics.batch_size.get_sample_count(), 2);
        assert_eq!(metrics.batch_size.get_sample_sum(), 7.0);
        assert_eq!(out[0][[0, 1]], 4.0);
        assert_eq!(out[3][[0, 1]], 3.0);
    }
}
