//! Who blocks whom, for sends to direct conversations: read through a cache so a send
//! does not cost two store lookups per member. A user's list is dropped when they change
//! it (on every gateway, by a `blocks` announcement) and re-read at least every
//! [`LIST_TTL`], which heals a missed announcement.

use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_core::model::Room;
use aurora_core::ports::{PortResult, UserStore};

/// How long a cached block list is trusted without an announcement.
pub const LIST_TTL: Duration = Duration::from_secs(30);
/// Past this many cached users, the caches start over (they refill on demand).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct Blocks {
    /// Lower-cased username → user id (neither changes).
    ids: DashMap<String, Arc<str>>,
    /// User id → the ids they block, and when that was read.
    lists: DashMap<Arc<str>, (Instant, Arc<[String]>)>,
}

impl Blocks {
    /// Whether a member of the conversation `room` (other than `user_id`) blocks `user_id`.
    pub async fn blocked_in(&self, users: &dyn UserStore, room: &Room, user_id: &str) -> PortResult<bool> {
        for name in &room.members {
            let Some(member) = self.id_of(users, name).await? else { continue };
            if &*member != user_id && self.list_of(users, &member).await?.iter().any(|b| b == user_id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The user changed their list: the next check reads it again.
    pub fn forget(&self, user_id: &str) {
        self.lists.remove(user_id);
    }

    async fn id_of(&self, users: &dyn UserStore, name: &str) -> PortResult<Option<Arc<str>>> {
        if let Some(id) = self.ids.get(name) {
            return Ok(Some(id.clone()));
        }
        let Some(user) = users.user_by_name(name).await? else { return Ok(None) };
        let id: Arc<str> = user.id.into();
        if self.ids.len() >= MAX_ENTRIES {
            self.ids.clear();
        }
        self.ids.insert(name.to_owned(), id.clone());
        Ok(Some(id))
    }

    async fn list_of(&self, users: &dyn UserStore, id: &Arc<str>) -> PortResult<Arc<[String]>> {
        if let Some(entry) = self.lists.get(id) {
            if entry.0.elapsed() < LIST_TTL {
                return Ok(entry.1.clone());
            }
        }
        let list: Arc<[String]> = users.blocked(id).await?.into();
        if self.lists.len() >= MAX_ENTRIES {
            self.lists.clear();
        }
        self.lists.insert(id.clone(), (Instant::now(), list.clone()));
        Ok(list)
    }
}
