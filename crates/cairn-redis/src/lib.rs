//! Redis adapters for state every node must share.
//!
//! `RedisRates` keeps the per-key requests- and tokens-per-minute buckets
//! (`gateway.shared_limits = "redis"`): an admission is one Lua script (`bucket.lua`) that
//! refills the key's buckets and takes from all or none of them atomically on the Redis
//! server, so any number of nodes on one Redis enforce one limit together without writing to
//! the database per request.
//! Budget reservations stay in the database: a call's usage record settles its reservation in
//! the same transaction, which keeps money exact.

mod rates;

pub use rates::RedisRates;
