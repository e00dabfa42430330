//! The rooms a session has joined. Nearly every connection is in one room, so the first one
//! sits inline in the session: a delivery finds it without touching another allocation, and
//! by pointer, since the session keys it by the name the hub shares with every delivery
//! ([`crate::hub::Hub::join`]). Further rooms (at most 100 in all) go to a map.

use std::sync::Arc;

use aurora_core::model::Room;

pub(super) struct JoinedRoom {
    pub config: Arc<Room>,
    /// Highest `seq` this client has been sent for the room.
    pub last_seq: u64,
    /// The user's read pointer as this connection last stored or learned it.
    pub read: u64,
}

#[derive(Default)]
pub(super) struct Rooms {
    first: Option<(Arc<str>, JoinedRoom)>,
    /// foldhash: keys are bounded per connection, so no flooding to defend against.
    rest: foldhash::HashMap<Arc<str>, JoinedRoom>,
}

/// Whether `name` is `room`: the same allocation, or the same text.
fn same(name: &str, room: &str) -> bool {
    (std::ptr::eq(name.as_ptr(), room.as_ptr()) && name.len() == room.len()) || name == room
}

impl Rooms {
    pub fn get(&self, room: &str) -> Option<&JoinedRoom> {
        match &self.first {
            Some((name, joined)) if same(name, room) => Some(joined),
            _ => self.rest.get(room),
        }
    }

    pub fn get_mut(&mut self, room: &str) -> Option<&mut JoinedRoom> {
        match &mut self.first {
            Some((name, joined)) if same(name, room) => Some(joined),
            _ => self.rest.get_mut(room),
        }
    }

    pub fn contains_key(&self, room: &str) -> bool {
        self.get(room).is_some()
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Adds a room, or replaces what is kept for it.
    pub fn insert(&mut self, name: Arc<str>, joined: JoinedRoom) {
        if let Some(kept) = self.get_mut(&name) {
            *kept = joined;
        } else if self.first.is_none() {
            self.first = Some((name, joined));
        } else {
            self.rest.insert(name, joined);
        }
    }

    pub fn remove(&mut self, room: &str) -> Option<JoinedRoom> {
        match &self.first {
            Some((name, _)) if same(name, room) => self.first.take().map(|(_, joined)| joined),
            _ => self.rest.remove(room),
        }
    }

    /// Forgets every room and returns their names.
    pub fn drain(&mut self) -> Vec<Arc<str>> {
        let first = self.first.take().map(|(name, _)| name);
        first.into_iter().chain(self.rest.drain().map(|(name, _)| name)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(last_seq: u64) -> JoinedRoom {
        JoinedRoom { config: Arc::new(Room::new_api("r", None)), last_seq, read: 0 }
    }

    #[test]
    fn rooms_are_found_by_name_whichever_allocation_holds_it() {
        let mut rooms = Rooms::default();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        rooms.insert(a.clone(), joined(1));
        rooms.insert(b.clone(), joined(2));
        rooms.insert(c.clone(), joined(3));
        assert_eq!(rooms.len(), 3);
        assert_eq!(rooms.get(&a).map(|j| j.last_seq), Some(1));
        assert_eq!(rooms.get("b").map(|j| j.last_seq), Some(2));
        assert!(rooms.get("d").is_none());
        rooms.insert("a".into(), joined(9)); // the same name in another allocation replaces it
        assert_eq!(rooms.len(), 3);
        assert_eq!(rooms.get(&a).map(|j| j.last_seq), Some(9));
        assert_eq!(rooms.remove("a").map(|j| j.last_seq), Some(9));
        assert!(!rooms.contains_key("a"));
        rooms.insert("b".into(), joined(5)); // kept in the map, not added a second time
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms.get_mut("b").map(|j| j.last_seq), Some(5));
        rooms.insert("e".into(), joined(4));
        assert_eq!(rooms.len(), 3);
        let mut names: Vec<String> = rooms.drain().iter().map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(names, ["b", "c", "e"]);
        assert_eq!(rooms.len(), 0);
    }
}
