//! `quiver-planner` owns how SQL becomes a Quiver plan on top of DataFusion:
//!
//! * [`checked_arithmetic`] — integer `+ - *` that fail on overflow (`22003`);
//! * [`functions`] — pgvector's functions as scalar UDFs;
//! * [`integer_literals`] — integer constants typed `integer` when they fit, as PostgreSQL does;
//! * [`join_search`] — a cross join sorted by the distance between its sides as a lateral search;
//! * [`json`] — `json` / `jsonb` in casts and their operators;
//! * [`operators`] — the `<->`, `<=>`, `<#>`, `<+>` operators and parameter typing;
//! * [`vector_avg`] — `avg(vector)` (as `vector_avg`);
//! * [`vector_cast`] — `::vector` casts and casts of vectors to other types;
//! * [`vector_field`] — the pgvector marker on Arrow fields, shared by all of the above;
//! * [`vector_search`] — the logical `VectorSearch` node, the optimizer rule
//!   that introduces it under `ORDER BY distance LIMIT k`, and its physical planner;
//! * [`subquery_value`] — the one value of a scalar subquery (so a correlated one aggregates);
//! * [`session`] — assembly of a DataFusion `SessionState` with all of the above
//!   over a Quiver catalog.

pub mod checked_arithmetic;
pub mod functions;
pub mod integer_literals;
pub mod join_search;
pub mod json;
pub mod lateral_search;
pub mod operators;
pub mod search_subqueries;
pub mod session;
pub mod subquery_value;
pub mod vector_avg;
pub mod vector_cast;
pub mod vector_field;
pub mod vector_search;
pub mod vector_value;
