//! What is kept beside a session, and how: its keys and their cluster
//! slots (`keys`), its meta (`meta`), its deadlines (`expiry`), the Lua
//! scripts that keep them together (`scripts`), its value sealed at rest
//! (`seal`), the lifecycle events its scripts' replies tell (`events`),
//! the fleet's numbers of the sessions that ended (`ended`) and the logout
//! markers a late touch may have undone (`repairs`).

pub mod ended;
pub mod events;
pub mod expiry;
pub mod keys;
pub mod meta;
pub mod repairs;
pub mod scripts;
pub mod seal;
