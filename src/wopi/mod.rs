//! The WOPI protocol as the gateway sees it: the URL table and the operation each request
//! carries (wopi.md §1), and proof keys (wopi.md §10).

pub mod names;
pub mod operation;
pub mod proof;
pub mod route;
pub mod utf7;
pub mod view_mode;

pub use view_mode::ViewMode;
