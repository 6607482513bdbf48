//! Translating whole articles.
