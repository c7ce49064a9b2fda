//! Kaspi simulator (to be written).
