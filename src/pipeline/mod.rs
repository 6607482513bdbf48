//! Tasks on whole articles: summarize, segment, translate.

pub mod checks;
pub mod segment;
pub mod summarize;
pub mod translate;
