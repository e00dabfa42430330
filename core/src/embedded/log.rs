//! The in-process message log: a bounded queue into the pipeline, which group-commits
//! batches to the file store, then publishes them and acks their senders.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::model::{Message, Submission};
use crate::pipeline::{publish, Pipeline};
use crate::ports::{Accepted, Bus, MessageLog, PortError, PortResult};

type Entry = (Submission, oneshot::Sender<PortResult<()>>);

/// Most submissions waiting for the pipeline; past this `append` fails with `Overloaded`.
pub const LOG_QUEUE: usize = 8192;
const BATCH: usize = 512;

pub struct EmbeddedLog {
    tx: mpsc::Sender<Entry>,
}

/// A stored batch (or why it was not stored) and the senders waiting on it.
type Committed = (PortResult<Vec<Message>>, Vec<oneshot::Sender<PortResult<()>>>);

/// Batches stored and not yet published; the commit stage waits past this.
const COMMITTED_QUEUE: usize = 4;

/// The pipeline's two stages. Both end once every log handle is dropped.
pub struct PipelineTasks {
    /// Stores batches in order. Run it on a thread of its own: a batch is then committed
    /// as soon as it is queued, not when a runtime worker busy writing to sockets gets to it.
    pub commit: BoxFuture<'static, ()>,
    /// Publishes each stored batch and answers its senders. Run it on the runtime, where
    /// waking the members' sessions costs least.
    pub fan_out: BoxFuture<'static, ()>,
}

impl EmbeddedLog {
    /// The log and the pipeline stages to run.
    pub fn new(pipeline: Pipeline) -> (Arc<Self>, PipelineTasks) {
        let bus = pipeline.bus();
        let (tx, rx) = mpsc::channel(LOG_QUEUE);
        let (done_tx, done_rx) = mpsc::channel(COMMITTED_QUEUE);
        let tasks =
            PipelineTasks { commit: commit(pipeline, rx, done_tx).boxed(), fan_out: fan_out(bus, done_rx).boxed() };
        (Arc::new(EmbeddedLog { tx }), tasks)
    }
}

async fn commit(mut pipeline: Pipeline, mut rx: mpsc::Receiver<Entry>, done: mpsc::Sender<Committed>) {
    let mut entries = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut entries, BATCH).await > 0 {
        let (batch, replies): (Vec<_>, Vec<_>) = entries.drain(..).unzip();
        let result = pipeline.store(batch).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "embedded pipeline failed a batch");
        }
        if done.send((result, replies)).await.is_err() {
            return;
        }
    }
}

async fn fan_out(bus: Arc<dyn Bus>, mut done: mpsc::Receiver<Committed>) {
    while let Some((result, replies)) = done.recv().await {
        let result = match result {
            Ok(messages) => {
                publish(bus.as_ref(), &messages).await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

impl MessageLog for EmbeddedLog {
    fn append(&self, submission: Submission) -> Accepted {
        let (reply, done) = oneshot::channel();
        match self.tx.try_send((submission, reply)) {
            Ok(()) => done.map(|r| r.unwrap_or(Err(PortError::Stopped("message log")))).boxed(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                futures_util::future::ready(Err(PortError::Overloaded("message log queue full"))).boxed()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                futures_util::future::ready(Err(PortError::Stopped("message log"))).boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{FileStore, MemoryBus};
    use crate::pipeline::tests::sub;
    use crate::ports::{BusSink, Dependency, FailureKind, MessageStore, RoomEvent};
    use async_trait::async_trait;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<u64>>);

    impl BusSink for Seen {
        fn deliver(&self, _room: &str, event: RoomEvent) {
            self.0.lock().unwrap().extend(event.seq);
        }
    }

    #[tokio::test]
    async fn a_send_is_acked_once_stored_and_published_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path()).unwrap());
        let bus = Arc::new(MemoryBus::default());
        let seen = Arc::new(Seen::default());
        bus.attach(seen.clone());
        let (log, tasks) = EmbeddedLog::new(Pipeline::new(store.clone(), bus));
        let fan_out = tokio::spawn(tasks.fan_out);
        let commit = tokio::spawn(tasks.commit);
        let acks: Vec<_> = ["a", "b", "c"].into_iter().map(|id| log.append(sub(id))).collect();
        for ack in acks {
            ack.await.unwrap();
        }
        // Every ack came after its message reached the bus, in seq order, and the store has them.
        assert_eq!(*seen.0.lock().unwrap(), vec![1, 2, 3]);
        assert_eq!(store.last_seq("r").await.unwrap(), 3);
        drop(log);
        commit.await.unwrap();
        fan_out.await.unwrap();
    }

    /// A store whose disk refuses every write.
    struct Refusing;

    #[async_trait]
    impl MessageStore for Refusing {
        async fn last_seq(&self, _: &str) -> PortResult<u64> {
            Ok(0)
        }
        async fn insert(&self, _: &[Message]) -> PortResult<()> {
            Err(PortError::unavailable(Dependency::Store, FailureKind::Error, "disk full"))
        }
        async fn update(&self, _: &[Message]) -> PortResult<()> {
            Err(PortError::unavailable(Dependency::Store, FailureKind::Error, "disk full"))
        }
        async fn before(&self, _: &str, _: Option<u64>, _: usize) -> PortResult<Vec<Message>> {
            Ok(Vec::new())
        }
        async fn after(&self, _: &str, _: u64, _: usize) -> PortResult<(Vec<Message>, bool)> {
            Ok((Vec::new(), false))
        }
        async fn between(&self, _: &str, _: u64, _: u64, _: usize) -> PortResult<Vec<Message>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_batch_that_is_not_stored_is_refused_to_its_senders_and_not_published() {
        let bus = Arc::new(MemoryBus::default());
        let seen = Arc::new(Seen::default());
        bus.attach(seen.clone());
        let (log, tasks) = EmbeddedLog::new(Pipeline::new(Arc::new(Refusing), bus));
        tokio::spawn(tasks.fan_out);
        tokio::spawn(tasks.commit);
        let err = log.append(sub("a")).await.unwrap_err();
        assert!(matches!(err, PortError::Unavailable { ref detail, .. } if detail.contains("disk full")), "{err:?}");
        assert!(seen.0.lock().unwrap().is_empty());
    }
}
