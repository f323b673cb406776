//! gavel's storage: the journal of events and the snapshots of the engine's state.
//!
//! Not built yet: the storage issue adds the SQLite and Postgres backends, group commit and
//! recovery here. Until then the server keeps no state beyond its data directory's secret.
