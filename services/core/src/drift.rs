//! Drift statistics between a reference window and a current window of samples' numeric
//! features.
