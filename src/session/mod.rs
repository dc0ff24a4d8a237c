//! What is kept beside a session, and how: its keys and their cluster
//! slots (`keys`), its meta (`meta`), its deadlines (`expiry`), its value
//! sealed at rest (`seal`), its device data (`devices`), the lifecycle
//! events its scripts' replies tell (`events`) and the fleet's numbers of
//! the sessions that ended (`ended`).

pub mod devices;
pub mod ended;
pub mod events;
pub mod expiry;
pub mod keys;
pub mod meta;
pub mod seal;
