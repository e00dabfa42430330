//! Read receipts, aggregated: a member's risen read pointer reaches every gateway of the
//! room as a `receipt` on the bus; each gateway keeps the latest per reader and sends its
//! members one `receipts` frame per room per [`FLUSH_EVERY`], however many read meanwhile.

use dashmap::DashMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurora_core::model::UserRef;
use aurora_core::reads::Reader;

/// At most one `receipts` frame per room per member this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct Receipt {
    user: UserRef,
    read: u64,
}

/// Receipts heard since the last flush, by room, the latest per reader.
#[derive(Default)]
pub struct Pending {
    rooms: DashMap<Arc<str>, HashMap<Arc<str>, u64>>,
    names: DashMap<Arc<str>, Arc<str>>,
}

impl Pending {
    /// Keeps a `receipt` frame from the bus.
    pub fn add(&self, room: &Arc<str>, frame: &[u8]) {
        let Ok(r) = serde_json::from_slice::<Receipt>(frame) else {
            tracing::warn!(room = %room, "ignoring an unreadable receipt");
            return;
        };
        let mut readers = self.rooms.entry(room.clone()).or_default();
        let seq = readers.entry(r.user.id.clone()).or_default();
        *seq = (*seq).max(r.read);
        self.names.insert(r.user.id, r.user.name);
    }

    /// Everything kept, by room; starts over.
    pub fn take(&self) -> Vec<(Arc<str>, Vec<Reader>)> {
        let rooms: Vec<Arc<str>> = self.rooms.iter().map(|e| e.key().clone()).collect();
        let mut out = Vec::with_capacity(rooms.len());
        for room in rooms {
            let Some((room, readers)) = self.rooms.remove(&room) else { continue };
            let mut list: Vec<Reader> = readers
                .into_iter()
                .map(|(id, seq)| {
                    let name = self.names.get(&id).map(|n| n.clone()).unwrap_or_else(|| id.clone());
                    Reader { user: UserRef { id, name }, seq }
                })
                .collect();
            list.sort_by(|a, b| b.seq.cmp(&a.seq).then_with(|| a.user.name.cmp(&b.user.name)));
            out.push((room, list));
        }
        self.names.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_receipt_per_reader_is_kept_until_taken() {
        let p = Pending::default();
        let room: Arc<str> = "r".into();
        for (user, read) in [("a", 3), ("b", 5), ("a", 7), ("a", 6)] {
            let frame =
                format!(r#"{{"type":"receipt","room":"r","user":{{"id":"{user}","name":"N{user}"}},"read":{read}}}"#);
            p.add(&room, frame.as_bytes());
        }
        let taken = p.take();
        assert_eq!(taken.len(), 1);
        let seen: Vec<(&str, &str, u64)> = taken[0].1.iter().map(|r| (&*r.user.id, &*r.user.name, r.seq)).collect();
        assert_eq!(seen, [("a", "Na", 7), ("b", "Nb", 5)]);
        assert!(p.take().is_empty(), "taken once");
    }
}
