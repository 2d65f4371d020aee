//! The service's Prometheus metrics (the `prometheus` crate renders the text format): request
//! counts by endpoint and status, a latency histogram by endpoint, the sizes of the encoder
//! batches and the depth of the batching queue.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// The metrics of one server.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `patchmix_requests_total{endpoint, status}`.
    pub requests: IntCounterVec,
    /// `patchmix_request_duration_seconds{endpoint}`.
    pub latency: HistogramVec,
    /// `patchmix_batch_size`: images per encoder call.
    pub batch_size: Histogram,
    /// `patchmix_queue_depth`: requests waiting for the batcher (set when scraped).
    pub queue_depth: IntGauge,
}

impl Metrics {
    /// Fresh metrics in their own registry.
    ///
    /// # Errors
    ///
    /// [`prometheus::Error`] if a metric cannot be registered (a bug: the names are fixed).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = patchmix_train::serve::Metrics::new()?;
    /// m.batch_size.observe(3.0);
    /// assert!(m.render()?.contains("patchmix_batch_size_count 1"));
    /// # Ok::<(), prometheus::Error>(())
    /// ```
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "patchmix_requests_total",
                "HTTP requests by endpoint and status",
            ),
            &["endpoint", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "patchmix_request_duration_seconds",
                "HTTP request latency by endpoint",
            )
            .buckets(prometheus::exponential_buckets(0.000_5, 2.0, 16)?),
            &["endpoint"],
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("patchmix_batch_size", "Images per encoder call")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 11)?),
        )?;
        let queue_depth = IntGauge::new(
            "patchmix_queue_depth",
            "Requests waiting in the batching queue",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            batch_size,
            queue_depth,
        })
    }

    /// All metrics in the Prometheus text exposition format.
    ///
    /// # Errors
    ///
    /// [`prometheus::Error`] from the encoder.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
