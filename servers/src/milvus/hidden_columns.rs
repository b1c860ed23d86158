//! Columns as the door names them (a leaf module: the converters, the
//! partition logic and the typed plans all use it): the hidden columns the
//! door adds to a collection's table, and [`column`], a column of a typed
//! plan by its name.

use datafusion::common::Column;
use datafusion::logical_expr::Expr;

/// The text column holding each row's partition name (NULL: `_default`),
/// present once a collection has partitions (see `partitions`).
pub(super) const PARTITION_COLUMN: &str = "$partition";

/// The table's column `name` in a typed plan (unqualified: a plan reads
/// one table).
pub(super) fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}
