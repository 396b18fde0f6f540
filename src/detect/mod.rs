//! detect (being written)
