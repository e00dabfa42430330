//! The in-process message log: a bounded queue into one pipeline task that
//! group-commits batches to the file store.

use futures_util::FutureExt;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::model::Submission;
use crate::pipeline::Pipeline;
use crate::ports::{Accepted, MessageLog, PortError, PortResult};

type Entry = (Submission, oneshot::Sender<PortResult<()>>);

/// Most submissions waiting for the pipeline; past this `append` fails with `Overloaded`.
pub const LOG_QUEUE: usize = 8192;
const BATCH: usize = 512;

pub struct EmbeddedLog {
    tx: mpsc::Sender<Entry>,
}

impl EmbeddedLog {
    /// The log and the pipeline task to spawn; the task ends when every log handle is dropped.
    pub fn new(pipeline: Pipeline) -> (Arc<Self>, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(LOG_QUEUE);
        (Arc::new(EmbeddedLog { tx }), run(pipeline, rx))
    }
}

async fn run(mut pipeline: Pipeline, mut rx: mpsc::Receiver<Entry>) {
    let mut entries = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut entries, BATCH).await > 0 {
        let (batch, replies): (Vec<_>, Vec<_>) = entries.drain(..).unzip();
        let result = pipeline.process(batch).await.map(|_| ());
        if let Err(e) = &result {
            tracing::error!(error = %e, "embedded pipeline failed a batch");
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

impl MessageLog for EmbeddedLog {
    fn append(&self, submission: Submission) -> Accepted {
        let (reply, done) = oneshot::channel();
        match self.tx.try_send((submission, reply)) {
            Ok(()) => {
                done.map(|r| r.unwrap_or_else(|_| Err(PortError::Unavailable("message log stopped".into())))).boxed()
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                futures_util::future::ready(Err(PortError::Overloaded("message log queue full"))).boxed()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                futures_util::future::ready(Err(PortError::Unavailable("message log stopped".into()))).boxed()
            }
        }
    }
}
