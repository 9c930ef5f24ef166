//! Outlier-detection tests.
