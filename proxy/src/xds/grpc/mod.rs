//! xDS over gRPC (ADS).
pub mod proto;
