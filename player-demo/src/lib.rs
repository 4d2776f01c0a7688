//! hivecast demo and the HLS test origin shared by tests and benchmarks.
#![forbid(unsafe_code)]
