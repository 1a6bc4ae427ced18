//! Publishing metrics as CloudWatch Embedded Metric Format lines on stdout.
//!
//! Lambda sends a function's stdout to its CloudWatch Logs log group, and CloudWatch Logs extracts
//! the metrics of every EMF document it receives (the convention of Lambda Powertools). Publishing
//! is therefore a write to stdout: no API call in the hot path, no IAM permission, and no answer
//! that could be lost and make a retry store the same data twice. Rendering and the limits live in
//! [`lockreaper_core::metrics::emf`].
//!
//! Evidence: CloudWatch User Guide, "Using the embedded metric format with Lambda" (Lambda sends
//! everything written to stdout to the log group; CloudWatch Logs extracts EMF events; metrics not
//! flushed before a timeout are lost — hence every write here is flushed at once); Lambda Developer
//! Guide, "Configuring JSON and plain text log formats" (with `LogFormat: JSON`, which the template
//! sets, Lambda does not re-encode a line that is already JSON, so the documents reach Logs as
//! written); "Publishing custom metrics with the embedded metric format" (no
//! `cloudwatch:PutMetricData` permission needed).
//!
//! In tests the sink is a [`EmfCapture`]: the same lines, kept in memory, read back with the same
//! reader CloudWatch's extraction is modelled by ([`lockreaper_core::metrics::emf::read_output`]).

use std::io::Write;
use std::sync::{Arc, Mutex};

use lockreaper_core::metrics::emf::{self, ExtractedMetric};
use lockreaper_core::metrics::MetricDatum;

/// Why metrics could not be published.
#[derive(Debug, thiserror::Error)]
pub enum EmfError {
    /// The data cannot be expressed as valid EMF (CloudWatch would drop the document).
    #[error("cannot render metrics of namespace {namespace} as EMF: {reason}")]
    Render { namespace: String, reason: String },
    /// stdout could not be written.
    #[error("cannot write EMF metrics of namespace {namespace} to stdout: {reason}")]
    Write { namespace: String, reason: String },
}

#[derive(Clone, Debug)]
enum Target {
    Stdout,
    Capture(Arc<Mutex<Vec<String>>>),
}

/// Writes metric data of one namespace as EMF documents, one JSON object per line.
#[derive(Clone, Debug)]
pub struct EmfMetrics {
    namespace: String,
    target: Target,
}

/// The lines a capturing [`EmfMetrics`] wrote (shared with its clones).
#[derive(Clone, Debug, Default)]
pub struct EmfCapture {
    lines: Arc<Mutex<Vec<String>>>,
}

impl EmfCapture {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every metric extracted from the lines so far, as CloudWatch Logs would extract them;
    /// panics on an invalid document, which a test must never produce.
    pub fn metrics(&self) -> Vec<ExtractedMetric> {
        match emf::read_output(&self.lines().join("\n")) {
            Ok(metrics) => metrics,
            Err(e) => panic!("the function wrote an invalid EMF document: {e}"),
        }
    }

    /// The sum of a metric's values with exactly these dimensions.
    pub fn sum(&self, namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        emf::sum(&self.metrics(), namespace, name, dimensions)
    }

    /// Every value of a metric with exactly these dimensions.
    pub fn values(&self, namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> Vec<f64> {
        emf::values(&self.metrics(), namespace, name, dimensions)
    }
}

impl EmfMetrics {
    /// A sink that writes to the process's stdout (the Lambda functions).
    pub fn stdout(namespace: impl Into<String>) -> Self {
        EmfMetrics {
            namespace: namespace.into(),
            target: Target::Stdout,
        }
    }

    /// A sink that keeps its lines in memory (tests, benches), and the handle to read them.
    pub fn capture(namespace: impl Into<String>) -> (Self, EmfCapture) {
        let capture = EmfCapture::default();
        (
            EmfMetrics {
                namespace: namespace.into(),
                target: Target::Capture(capture.lines.clone()),
            },
            capture,
        )
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Writes `data` as EMF lines; returns how many lines. All lines of one call are written
    /// under one stdout lock and flushed, so a log line of another thread cannot split them.
    pub fn emit(&self, data: &[MetricDatum]) -> Result<usize, EmfError> {
        let lines = emf::render(&self.namespace, data).map_err(|reason| EmfError::Render {
            namespace: self.namespace.clone(),
            reason,
        })?;
        match &self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                let mut buffer = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
                for line in &lines {
                    buffer.push_str(line);
                    buffer.push('\n');
                }
                out.write_all(buffer.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| EmfError::Write {
                        namespace: self.namespace.clone(),
                        reason: e.to_string(),
                    })?;
            }
            Target::Capture(captured) => match captured.lock() {
                Ok(mut captured) => captured.extend(lines.iter().cloned()),
                Err(poisoned) => poisoned.into_inner().extend(lines.iter().cloned()),
            },
        }
        Ok(lines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use lockreaper_core::metrics::{MetricValue, Unit, DIM_TABLE, LOCKS_ACQUIRED};

    #[test]
    fn a_capture_reads_back_what_was_emitted() {
        let (sink, capture) = EmfMetrics::capture("LockReaper");
        let datum = MetricDatum {
            name: LOCKS_ACQUIRED,
            dimensions: vec![(DIM_TABLE, "tf-locks".to_owned())],
            unit: Unit::Count,
            timestamp: Utc.with_ymd_and_hms(2026, 11, 26, 0, 3, 0).unwrap(),
            value: MetricValue::Single(2.0),
        };
        assert_eq!(sink.emit(std::slice::from_ref(&datum)).unwrap(), 1);
        assert_eq!(sink.clone().emit(&[datum]).unwrap(), 1);
        assert_eq!(capture.lines().len(), 2);
        assert_eq!(
            capture.sum("LockReaper", LOCKS_ACQUIRED, &[(DIM_TABLE, "tf-locks")]),
            4.0
        );
    }
}
