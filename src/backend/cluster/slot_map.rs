//! The slot map: which master serves each of the 16,384 slots, as
//! `CLUSTER SLOTS` last said and MOVED replies corrected since.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use crate::session::keys::SLOTS;

/// Least time between two reads of the slot map.
const REFRESH_EVERY: Duration = Duration::from_millis(50);

pub struct SlotMap {
    /// The master serving each slot, as "host:port".
    slots: Vec<Option<Arc<str>>>,
    /// Ask the cluster for its slots before the next send.
    stale: bool,
    /// When the slot map was last read.
    refreshed: Option<Instant>,
}

impl SlotMap {
    pub fn new() -> SlotMap {
        SlotMap {
            slots: vec![None; SLOTS],
            stale: true,
            refreshed: None,
        }
    }

    pub fn is_stale(&self) -> bool {
        self.stale
    }

    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// While a node is down every pipeline marks the map stale; asking again
    /// at most every REFRESH_EVERY spares the live nodes a CLUSTER SLOTS per
    /// pipeline (a MOVED has already fixed its slot).
    pub fn due(&self) -> bool {
        self.stale
            && self
                .refreshed
                .is_none_or(|at| at.elapsed() >= REFRESH_EVERY)
    }

    /// A fresh map from `CLUSTER SLOTS` (see `parse_slots`).
    pub fn replace(&mut self, ranges: Vec<(u16, u16, Arc<str>)>) {
        self.slots = vec![None; SLOTS];
        for (start, end, node) in ranges {
            for s in start..=end.min(SLOTS as u16 - 1) {
                self.slots[s as usize] = Some(node.clone());
            }
        }
        self.stale = false;
        self.refreshed = Some(Instant::now());
    }

    /// A MOVED: the slot is served elsewhere now, and others may have moved.
    pub fn moved(&mut self, slot: u16, to: Arc<str>) {
        self.slots[slot as usize] = Some(to);
        self.stale = true;
    }

    /// The master of a slot; keyless commands go to any master.
    pub fn owner(&self, slot: Option<u16>) -> Option<Arc<str>> {
        match slot {
            Some(s) => self.slots[s as usize].clone(),
            None => self.slots.iter().flatten().next().cloned(),
        }
    }

    /// Every master, in a stable order.
    pub fn masters(&self) -> Vec<Arc<str>> {
        let mut addrs: Vec<Arc<str>> = self.slots.iter().flatten().cloned().collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

/// `CLUSTER SLOTS` as (first, last, master "host:port"); an empty host
/// means the node that answered.
pub fn parse_slots(reply: &Value, asked: &str) -> Option<Vec<(u16, u16, Arc<str>)>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let int = |v: &Value| match v {
            Value::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        let (start, end) = (int(fields.first()?)?, int(fields.get(1)?)?);
        let Value::Array(master) = fields.get(2)? else {
            return None;
        };
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let port = match master.get(1)? {
            Value::Int(p) => *p,
            _ => return None,
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        out.push((start, end, addr.into()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_maps_name_the_answering_host_when_a_master_has_none() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![
                Value::BulkString(Vec::new()),
                Value::Int(7000),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])]);
        let ranges = parse_slots(&reply, "localhost:7000").unwrap();
        assert_eq!(ranges, vec![(0, 5460, Arc::from("localhost:7000"))]);
    }

    #[test]
    fn moved_slots_are_fixed_at_once_and_the_map_refreshed_soon() {
        let mut map = SlotMap::new();
        map.replace(vec![(0, 16383, Arc::from("a:1"))]);
        assert!(!map.is_stale());
        map.moved(7, Arc::from("b:2"));
        assert_eq!(map.owner(Some(7)).as_deref(), Some("b:2"));
        assert_eq!(map.owner(Some(8)).as_deref(), Some("a:1"));
        assert!(map.is_stale());
        assert_eq!(map.masters().len(), 2);
    }
}
