//! quiver-sql
